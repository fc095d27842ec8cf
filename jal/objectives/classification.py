"""Task objectives: cross-entropy (per image or per pixel), its ensemble form, the linear probe.

One cross-entropy serves both tasks, told apart by the labels' shape: int
``[B]`` is a class per image; uint8 ``[B, H, W]`` is a mask per image
(semantic segmentation), with per-pixel logits ``[B, H, W, K]`` and void
pixels (`jal.segmentation_metrics.IGNORE`, 255) left out. The shapes are
static, so each compiled step has one branch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal.objectives.base import Batch, masked_mean
from jal.segmentation_metrics import IGNORE


def _pixels(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Per-pixel cross-entropy float32 ``[B, H, W]`` and the non-void mask float32 ``[B, H, W]``."""
  valid = labels != IGNORE
  safe = jnp.where(valid, labels, 0).astype(jnp.int32)
  ce = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), safe)
  return ce * valid, valid.astype(jnp.float32)


def per_example_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """float32 ``[B]``: each example's cross-entropy (nats).

  Args:
    logits: float ``[B, K]``, or ``[B, H, W, K]`` for segmentation.
    labels: int ``[B]``, or ``[B, H, W]`` class indices with `IGNORE` for void.

  Returns:
    For a mask, the mean over the image's non-void pixels (0 for an image
    with none): the per-image loss Learning Loss's module predicts (Yoo &
    Kweon 2019) on segmentation.
  """
  if labels.ndim == 1:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  ce, valid = _pixels(logits, labels)
  return jnp.sum(ce, axis=(1, 2)) / jnp.maximum(jnp.sum(valid, axis=(1, 2)), 1.0)


def task_cross_entropy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """float32 scalar: the batch's cross-entropy over its real examples.

  Per image: the mean over real examples (``mask`` 1). Per pixel: the mean
  over the non-void pixels of the real examples (every labelled pixel weighs
  the same, as in DeepLab's and DRN's training; PyTorch's
  ``CrossEntropyLoss(ignore_index=255)``).

  Args: as `per_example_cross_entropy`, and ``mask`` float ``[B]``, 0 for padding.
  """
  if labels.ndim == 1:
    return masked_mean(per_example_cross_entropy(logits, labels), mask)
  ce, valid = _pixels(logits, labels)
  valid = valid * mask[:, None, None]
  return jnp.sum(ce * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def masked_accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """The fraction of real examples (segmentation: of their non-void pixels) whose
  arg-max class is the label.

  Args:
    logits: float ``[B, C]`` (or ``[B, H, W, C]``).
    labels: int ``[B]`` (or ``[B, H, W]``, `IGNORE` for void).
    mask: float ``[B]``, 0 for padding.

  Returns:
    float32 scalar in ``[0, 1]``.
  """
  correct = (jnp.argmax(logits, -1) == labels).astype(jnp.float32)
  if labels.ndim == 1:
    return masked_mean(correct, mask)
  valid = (labels != IGNORE).astype(jnp.float32) * mask[:, None, None]
  return jnp.sum(correct * valid) / jnp.maximum(jnp.sum(valid), 1.0)


def cross_entropy_loss(apply_fn, variables, batch: Batch, key, progress):
  """Softmax cross-entropy of the ``'classifier'`` head: the standard task objective.

  A `jal.objectives.LossFn`; per image or per pixel (`task_cross_entropy`).
  ``key`` drives dropout, if the model has any (MC-dropout strategies).
  Metrics: ``loss``, ``accuracy`` (segmentation: pixel accuracy).
  """
  del progress
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  logits = outputs['classifier']
  loss = task_cross_entropy(logits, batch.labels, batch.mask)
  accuracy = masked_accuracy(logits, batch.labels, batch.mask)
  return loss, (new_state['batch_stats'], {'loss': loss, 'accuracy': accuracy})


def ensemble_loss(apply_fn, variables, batch: Batch, key, progress):
  """The sum over ensemble members of each member's cross-entropy (a `LossFn`).

  Members share no parameters, so the gradient of the sum is each member's own
  gradient: M independent trainings in one step (Beluch et al. 2018). The
  model's ``'members'`` output holds each member's logits ``[B, M, C]`` and
  ``'classifier'`` the ensemble's prediction (`jal.models.Ensemble`). Metrics:
  ``loss`` (the members' mean) and ``accuracy`` (the ensemble's).
  """
  del progress
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  per_member = optax.softmax_cross_entropy_with_integer_labels(
      outputs['members'], batch.labels[:, None])  # [B, M]
  member_losses = jax.vmap(masked_mean, in_axes=(1, None))(per_member, batch.mask)  # [M]
  accuracy = masked_accuracy(outputs['classifier'], batch.labels, batch.mask)
  return jnp.sum(member_losses), (new_state['batch_stats'],
                                  {'loss': jnp.mean(member_losses), 'accuracy': accuracy})


def linear_probe_loss(apply_fn, variables, batch: Batch, key, progress):
  """Cross-entropy of a linear classifier on frozen features (a `LossFn`).

  The backbone runs in eval mode and passes no gradient (its batch-norm
  statistics come back unchanged): the linear stage of supervised
  contrastive learning (Khosla et al. 2020), SCAL's second stage. Metrics:
  ``loss``, ``accuracy``.
  """
  del key, progress
  outputs = apply_fn(variables, batch.images, train=False,
                     head_args={'classifier': {'stop_gradient': True}})
  logits = outputs['classifier']
  loss = masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels),
                     batch.mask)
  accuracy = masked_accuracy(logits, batch.labels, batch.mask)
  return loss, (variables['batch_stats'], {'loss': loss, 'accuracy': accuracy})
