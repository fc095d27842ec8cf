"""Training objectives shared by several methods.

The supervised contrastive loss (SCAL's task model) and the loss-ranking
losses. The ranking losses train a loss prediction module (Yoo & Kweon 2019) from the pairs of a
batch: example ``i`` of the first half is paired with example ``B - 1 - i``
(the batch against its reverse, as in the reference implementation of Learning
Loss), giving ``B // 2`` pairs; a pair counts only if both examples are real
(``mask`` 1), and each loss is the mean over the pairs that count. The true
losses are targets: no gradient flows into them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal import training


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
  ``s_ij = +1`` if ``l_i > l_j`` else ``-1`` and ``xi`` the margin. (Paper
  004 quotes it with a leading minus sign, a typo: the loss is a hinge, >= 0.)

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
  return training.masked_mean(jnp.maximum(0.0, margin - sign * predicted_diff), weight)


def pairwise_ranking_loss(predicted: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """TA-VAAL's ranking loss (Kim et al., CVPR 2021, paper 004, Eq. 1).

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
  return training.masked_mean(optax.sigmoid_binary_cross_entropy(predicted_diff, order), weight)


# Stands in for -inf in masked similarity logits: finite, so that a row with
# nothing left to compare against gives a finite logsumexp (and no NaN
# gradient), yet exp(-1e9 - max) is exactly 0 in float32.
_MASKED_LOGIT = -1e9


def supervised_contrastive_loss(z: jax.Array, labels: jax.Array, mask: jax.Array,
                                temperature: float = 0.07) -> jax.Array:
  """The supervised contrastive loss (Khosla et al. 2020, Eq. 2; paper 002, Eq. 1).

  For every anchor ``i`` of the (augmented) batch,
  ``l_i = -1/|P(i)| sum_{p in P(i)} log(exp(z_i . z_p / T) / sum_{a in A(i)} exp(z_i . z_a / T))``
  with ``A(i)`` every other real example of the batch and ``P(i)`` those of
  ``A(i)`` with the anchor's label. The ``z`` are L2-normalised here, as the
  equation assumes. Where the equation sums over anchors, this returns the
  mean over the anchors with at least one positive, as Khosla et al.'s code
  does (with ``T / base_T = 1`` at the default temperature), so the scale does
  not grow with the batch. An anchor with no positive (the only member of its
  class in a batch of one view each) has an undefined term: it is left out,
  though it still serves as a negative for the others. With two views per
  image, every anchor has its other view as a positive.

  Args:
    z: float ``[N, D]``, the projection head's output for every view of the
      batch (two views of B images: ``N = 2B``, each image's label repeated).
    labels: int ``[N]``.
    mask: float ``[N]``, 1 for real examples, 0 for padding (neither an
      anchor, a positive nor a negative).
    temperature: ``T`` (0.07 in paper 002).

  Returns:
    float32 scalar; 0 when no anchor has a positive.
  """
  z = z.astype(jnp.float32)
  z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-12)
  n = z.shape[0]
  real = mask > 0
  others = real[None, :] & ~jnp.eye(n, dtype=bool)
  logits = jnp.where(others, z @ z.T / temperature, _MASKED_LOGIT)
  log_prob = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
  positive = others & (labels[:, None] == labels[None, :])
  num_positive = jnp.sum(positive, axis=1)
  mean_log_prob = jnp.sum(jnp.where(positive, log_prob, 0.0), axis=1) / jnp.maximum(
      num_positive, 1)
  anchor = (real & (num_positive > 0)).astype(jnp.float32)
  return training.masked_mean(-mean_log_prob, anchor)
