"""TA-VAAL (Kim et al., CVPR 2021, paper 004); see `jal.strategies._vaal`.

The task learner carries the ranker R (Learning Loss's loss prediction
module, `jal.models.LossPredictionHead`) trained with the pairwise ranking
loss (Eq. 1), ``L_total = L_T + eta L_R`` (Eq. 2, eta = ``ranking_weight``).
Algorithm 1 updates R only while ``n <= 0.8 N`` (``ranker_epochs``) and
updates the task learner with the gradient of ``L_total`` throughout: after
that point R is frozen but its loss still reaches the backbone. (TA-VAAL's
public code instead keeps training R and detaches its input after 60% of the
epochs, as Learning Loss does; the paper decides.)
"""

from __future__ import annotations

import functools

from jal import losses
from jal.errors import JalError
from jal.models import ClassifierHead, LossPredictionHead
from jal.strategies import _learning_loss, _vaal


class Strategy(_vaal.AdversarialStrategy):
  """VAAL conditioned on the task learner's predicted loss rank."""

  conditioned = True

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if not 0.0 <= cfg.ranker_epochs <= 1.0:
      raise JalError(f'tavaal: config.strategy.ranker_epochs={cfg.ranker_epochs} must be a '
                     'fraction of the epochs in [0, 1] (Algorithm 1: 0.8)')
    self.task_loss = functools.partial(
        _learning_loss.learning_loss_objective, ranking_loss=losses.pairwise_ranking_loss,
        weight=cfg.ranking_weight, detach_after=float('inf'))
    self.task_freeze_after = {'heads_loss_prediction': cfg.ranker_epochs}

  def task_heads(self, num_classes: int) -> dict:
    return {'classifier': ClassifierHead(num_classes),
            'loss_prediction': LossPredictionHead(self.strategy_config.loss_prediction_width)}
