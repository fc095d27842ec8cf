"""Learning Loss (Yoo & Kweon, "Learning Loss for Active Learning", CVPR 2019).

The task model gets a loss prediction module (`jal.models.LossPredictionHead`:
per block GAP -> FC -> ReLU, concatenated -> FC) trained with it on the
labeled pool: ``L = L_task + lambda L_rank`` (Eq. 3, lambda =
``ranking_weight``, 1), with ``L_rank`` a ranking loss between the predicted
and the true per-example cross-entropies over pairs of the batch. After a
fraction ``detach_after`` of the epochs (0.6: epoch 120 of 200 in the paper)
the module's gradient no longer reaches the backbone (Sec. 4.1: "we stop the
gradient from the loss prediction module propagated to the target model"),
and the module alone keeps learning. The query takes the candidates with the
highest predicted loss.

Two ranking losses: ``learning_loss`` uses the paper's margin loss (Eq. 2,
margin ``ranking_margin`` = 1); ``learning_loss_v2`` uses TA-VAAL's
pairwise ranking loss (paper 004, Eq. 1), with the same module and schedule.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import optax

from jal import losses, training
from jal.errors import JalError
from jal.models import ClassifierHead, LossPredictionHead
from jal.strategies import base


def learning_loss_objective(apply_fn, variables, images, labels, mask, key, progress, *,
                            ranking_loss, weight: float, detach_after: float):
  """``L_task + weight * ranking_loss(l^, l)`` (Yoo & Kweon, Eq. 3); a `LossFn`.

  Args: those of `jal.training.LossFn`, and
    ranking_loss: `losses.margin_ranking_loss` (with its margin bound) or
      `losses.pairwise_ranking_loss`, of ``(predicted [B], target [B], mask [B])``.
    weight: lambda.
    detach_after: from this fraction of the epochs on (``progress >=``), no
      gradient flows from the loss prediction module into the backbone.

  Metrics: ``loss`` (the total), ``task_loss``, ``ranking_loss``, ``accuracy``.
  """
  stop = progress >= detach_after
  outputs, new_state = apply_fn(variables, images, train=True, rngs={'dropout': key},
                                head_args={'loss_prediction': {'stop_gradient': stop}},
                                mutable=['batch_stats'])
  logits = outputs['classifier']
  per_example = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  task = training.masked_mean(per_example, mask)
  ranking = ranking_loss(outputs['loss_prediction'], per_example, mask)
  total = task + weight * ranking
  accuracy = training.masked_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), mask)
  return total, (new_state['batch_stats'], {'loss': total, 'task_loss': task,
                                             'ranking_loss': ranking, 'accuracy': accuracy})


def _predicted_loss(outputs):
  return outputs['loss_prediction']


class LearningLossStrategy(base.TaskScoreStrategy):
  """Trains a loss prediction module with the task model; queries the highest predicted loss.

  Subclasses set ``ranking`` to ``'margin'`` or ``'pairwise'``. Config
  (``config.strategy``): ``loss_prediction_width``, ``ranking_weight``,
  ``ranking_margin`` (margin loss only), ``detach_after``.
  """

  ranking = 'margin'
  score_outputs = staticmethod(_predicted_loss)

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if not 0.0 <= cfg.detach_after <= 1.0 or cfg.loss_prediction_width < 1:
      raise JalError(f'{cfg.name}: config.strategy.detach_after={cfg.detach_after} must be in '
                     f'[0, 1] and loss_prediction_width={cfg.loss_prediction_width} at least 1')
    if self.ranking == 'margin':
      ranking_loss = functools.partial(losses.margin_ranking_loss, margin=cfg.ranking_margin)
    else:
      ranking_loss = losses.pairwise_ranking_loss
    self.task_loss = functools.partial(learning_loss_objective, ranking_loss=ranking_loss,
                                       weight=cfg.ranking_weight, detach_after=cfg.detach_after)

  def task_heads(self, num_classes: int) -> dict:
    return {'classifier': ClassifierHead(num_classes),
            'loss_prediction': LossPredictionHead(self.strategy_config.loss_prediction_width)}
