"""Loss-ranking objectives: training a loss prediction module from the pairs of a batch.

Learning Loss (Yoo & Kweon, CVPR 2019) and TA-VAAL's ranker (Kim et al., CVPR
2021) train a module that predicts each example's loss, from the pairs of a
batch: example ``i`` of the first half is paired with example ``B - 1 - i``
(the batch against its reverse, as in the reference implementation of
Learning Loss), giving ``B // 2`` pairs; a pair counts only if both examples
are real (``mask`` 1), and each loss is the mean over the pairs that count.
The true losses are targets: no gradient flows into them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal.objectives.base import Batch, masked_mean
from jal.objectives.classification import (masked_accuracy, per_example_cross_entropy,
                                          task_cross_entropy)


def _pairs(predicted, target, mask):
  half = predicted.shape[0] // 2
  flip = lambda x: x[::-1][:half]
  predicted_diff = predicted[:half] - flip(predicted)
  target_diff = jax.lax.stop_gradient(target[:half] - flip(target))
  weight = mask[:half] * flip(mask)
  return predicted_diff, target_diff, weight


def margin_ranking_loss(predicted: jax.Array, target: jax.Array, mask: jax.Array,
                        margin: float = 1.0) -> jax.Array:
  """Learning Loss's loss-prediction loss (Yoo & Kweon, CVPR 2019, Eq. 2).

  ``L = mean over pairs (i, j) of max(0, -s_ij (l^_i - l^_j) + xi)``, with
  ``s_ij = +1`` if ``l_i > l_j`` else ``-1`` and ``xi`` the margin. (Kim et al.
  2021 quote it with a leading minus sign, a typo: the loss is a hinge, >= 0.)

  Args:
    predicted: float ``[B]``, the module's predicted losses ``l^``.
    target: float ``[B]``, the true per-example losses ``l`` (not
      differentiated).
    mask: float ``[B]``, 1 for real examples, 0 for padding.
    margin: ``xi`` (1 in the paper).

  Returns:
    float32 scalar; 0 when there is no complete pair.
  """
  predicted_diff, target_diff, weight = _pairs(predicted, target, mask)
  sign = jnp.where(target_diff > 0, 1.0, -1.0)
  return masked_mean(jnp.maximum(0.0, margin - sign * predicted_diff), weight)


def pairwise_ranking_loss(predicted: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """TA-VAAL's ranking loss (Kim et al., CVPR 2021, Eq. 1).

  ``L_R = -(2/B) sum over pairs [I log sigma(l^_i - l^_j) + (1 - I) log(1 -
  sigma(l^_i - l^_j))]``, ``I = 1`` if ``l_i > l_j`` else 0: the binary
  cross-entropy of the pair's order, a smooth alternative to
  `margin_ranking_loss`. ``2/B`` is one over the number of pairs: the mean.

  Args:
    predicted: float ``[B]``, the ranker's outputs ``l^``.
    target: float ``[B]``, the true per-example losses (not differentiated).
    mask: float ``[B]``, 1 for real examples, 0 for padding.

  Returns:
    float32 scalar; 0 when there is no complete pair.
  """
  predicted_diff, target_diff, weight = _pairs(predicted, target, mask)
  order = (target_diff > 0).astype(jnp.float32)
  return masked_mean(optax.sigmoid_binary_cross_entropy(predicted_diff, order), weight)


def loss_prediction_objective(apply_fn, variables, batch: Batch, key, progress, *, ranking_loss,
                              weight: float, detach_after: float):
  """``L_task + weight * ranking_loss(l^, l)`` (Yoo & Kweon, Eq. 3); a `LossFn`.

  The task model carries a loss prediction module (head ``'loss_prediction'``,
  `jal.models.LossPredictionHead`) trained with it: Learning Loss (Yoo &
  Kweon 2019) with the margin loss, TA-VAAL's ranker (Kim et al. 2021, Eq. 2)
  with the pairwise loss.

  Args: those of `jal.objectives.LossFn`, and
    ranking_loss: `losses.margin_ranking_loss` (with its margin bound) or
      `losses.pairwise_ranking_loss`, of ``(predicted [B], target [B], mask [B])``.
    weight: lambda.
    detach_after: from this fraction of the epochs on (``progress >=``), no
      gradient flows from the loss prediction module into the backbone.

  Metrics: ``loss`` (the total), ``task_loss``, ``ranking_loss``, ``accuracy``.
  """
  stop = progress >= detach_after
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                head_args={'loss_prediction': {'stop_gradient': stop}},
                                mutable=['batch_stats'])
  logits = outputs['classifier']
  per_example = per_example_cross_entropy(logits, batch.labels)
  task = task_cross_entropy(logits, batch.labels, batch.mask)
  ranking = ranking_loss(outputs['loss_prediction'], per_example, batch.mask)
  total = task + weight * ranking
  accuracy = masked_accuracy(logits, batch.labels, batch.mask)
  return total, (new_state['batch_stats'], {'loss': total, 'task_loss': task,
                                             'ranking_loss': ranking, 'accuracy': accuracy})
