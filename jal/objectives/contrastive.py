"""The supervised contrastive objective (Khosla et al., NeurIPS 2020), SCAL's task loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jal.models.layers import l2_normalize
from jal.objectives.base import Batch, masked_mean


# Stands in for -inf in masked similarity logits: finite, so that a row with
# nothing left to compare against gives a finite logsumexp (and no NaN
# gradient), yet exp(-1e9 - max) is exactly 0 in float32.
_MASKED_LOGIT = -1e9


def supervised_contrastive_loss(z: jax.Array, labels: jax.Array, mask: jax.Array,
                                temperature: float = 0.07) -> jax.Array:
  """The supervised contrastive loss (Khosla et al. 2020, Eq. 2; SCAL's Eq. 1).

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
    temperature: ``T`` (0.07 in SCAL, Krishnan et al. 2021).

  Returns:
    float32 scalar; 0 when no anchor has a positive.
  """
  z = l2_normalize(z)
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
  return masked_mean(-mean_log_prob, anchor)


def contrastive_objective(apply_fn, variables, batch: Batch, key, progress, *,
                          temperature: float):
  """The supervised contrastive loss of the projection head's output (a `LossFn`).

  ``batch.images`` holds two views of each batch image (`jal.train.Trainer`
  with ``views=2``), ``labels`` and ``mask`` repeated alike. Metrics: ``loss``.
  """
  del progress
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  loss = supervised_contrastive_loss(outputs['projection'], batch.labels, batch.mask,
                                     temperature)
  return loss, (new_state['batch_stats'], {'loss': loss})


def nt_xent_loss(z: jax.Array, mask: jax.Array, temperature: float = 0.5) -> jax.Array:
  """SimCLR's NT-Xent loss (Chen, Kornblith, Norouzi & Hinton 2020, Eq. 1 and Algorithm 1).

  ``z`` holds two views of ``B`` images, view-major (rows ``i`` and ``B + i``
  are the two views of image ``i``). For each of the ``2B`` anchors,
  ``l(i, j) = -log(exp(sim(z_i, z_j) / T) / sum_{k != i} exp(sim(z_i, z_k) / T))``
  with ``j`` its other view and ``sim`` the cosine similarity; the loss is
  the mean over anchors. It is `supervised_contrastive_loss` with each
  image's index as its label (one positive per anchor: its other view);
  padding rows (``mask`` 0) are neither anchors nor negatives.

  Args:
    z: float ``[2B, D]``.
    mask: float ``[2B]``, 1 for real rows.
    temperature: ``T`` (Chen et al. use 0.5 on CIFAR-10, App. B.9).

  Returns:
    float32 scalar.
  """
  n = z.shape[0]
  return supervised_contrastive_loss(z, jnp.arange(n) % (n // 2), mask, temperature)


def simclr_objective(apply_fn, variables, batch: Batch, key, progress, *, temperature: float):
  """NT-Xent of the projection head's output over two views per image (a `LossFn`).

  ``batch.images`` holds two views of each batch image, view-major
  (`jal.train.Trainer` with ``views=2``); labels are not read. Metrics: ``loss``.
  """
  del progress
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  loss = nt_xent_loss(outputs['projection'], batch.mask, temperature)
  return loss, (new_state['batch_stats'], {'loss': loss})
