"""Learning Loss (Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019).

The task model gets a loss prediction module (`jal.models.LossPredictionHead`:
per block GAP -> FC -> ReLU, concatenated -> FC) trained with it on the
labeled pool: ``L = L_task + lambda L_rank`` (Eq. 3, lambda =
``ranking_weight``, 1), with ``L_rank`` a ranking loss between the predicted
and the true per-example cross-entropies over pairs of the batch
(`jal.objectives.ranking`). After a fraction ``detach_after`` of the epochs
(0.6: epoch 120 of 200 in the paper) the module's gradient no longer reaches
the backbone (Sec. 4.1: "we stop the gradient from the loss prediction
module propagated to the target model"), and the module alone keeps
learning. The query takes the candidates with the highest predicted loss.

``ranking`` chooses the ranking loss: ``'margin'``, the paper's (Eq. 2,
margin ``ranking_margin`` = 1); ``'pairwise'``, TA-VAAL's (Kim et al. 2021,
Eq. 1), with the same module and schedule: the strategy name
``learning_loss_v2`` (`ALIASES`).
"""

from __future__ import annotations

import functools

import ml_collections

from jal.errors import JalError
from jal.models import LossPredictionHead
from jal.objectives import ranking
from jal.strategies import base

RANKINGS = ('margin', 'pairwise')
ALIASES = {'learning_loss_v2': {'ranking': 'pairwise'}}


def default_config() -> ml_collections.ConfigDict:
  """Yoo & Kweon's setting: a module of width 128, weight 1, margin 1, detached at 60%.

  Keys: ``ranking`` (``'margin'``, ``'pairwise'``), ``width`` (units of each
  block's layer), ``ranking_weight`` (lambda), ``ranking_margin`` (xi, margin
  loss only), ``detach_after`` (fraction of the epochs).
  """
  return ml_collections.ConfigDict(dict(ranking='margin', width=128, ranking_weight=1.0,
                                        ranking_margin=1.0, detach_after=0.6))


class Strategy(base.ScoreStrategy):
  """Trains a loss prediction module with the task model; queries the highest predicted loss."""

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    self.check_choice('ranking', RANKINGS)
    if not 0.0 <= cfg.detach_after <= 1.0 or cfg.width < 1:
      raise JalError(f'{self.config.strategy.name}: config.strategy.learning_loss.detach_after='
                     f'{cfg.detach_after} must be in [0, 1] and width={cfg.width} at least 1')
    if cfg.ranking == 'margin':
      ranking_loss = functools.partial(ranking.margin_ranking_loss, margin=cfg.ranking_margin)
    else:
      ranking_loss = ranking.pairwise_ranking_loss
    loss = functools.partial(ranking.loss_prediction_objective, ranking_loss=ranking_loss,
                             weight=cfg.ranking_weight, detach_after=cfg.detach_after)
    return base.TaskSpec(self.task_model(loss_prediction=LossPredictionHead(cfg.width)), loss)

  def score(self, outputs):
    return outputs['loss_prediction']
