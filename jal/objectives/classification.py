"""Classification objectives: cross-entropy, its ensemble form and the linear probe."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal.objectives.base import Batch, masked_mean


def masked_accuracy(logits: jax.Array, labels: jax.Array, mask: jax.Array) -> jax.Array:
  """The fraction of real examples whose arg-max class is the label.

  Args:
    logits: float ``[B, C]``.
    labels: int ``[B]``.
    mask: float ``[B]``, 0 for padding.

  Returns:
    float32 scalar in ``[0, 1]``.
  """
  return masked_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), mask)


def cross_entropy_loss(apply_fn, variables, batch: Batch, key, progress):
  """Softmax cross-entropy of the ``'classifier'`` head: the standard task objective.

  A `jal.objectives.LossFn`. ``key`` drives dropout, if the model has any
  (MC-dropout strategies). Metrics: ``loss``, ``accuracy``.
  """
  del progress
  outputs, new_state = apply_fn(variables, batch.images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  logits = outputs['classifier']
  loss = masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, batch.labels),
                     batch.mask)
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
