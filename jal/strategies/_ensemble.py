"""Ensemble strategies: M task models trained together, scored together.

Beluch, Genewein, Nürnberger & Köhler, "The power of ensembles for active
learning in image classification", CVPR 2018. The task model is an
`jal.models.Ensemble` of ``config.strategy.num_members`` members (M = 3 by
default) that differ in their initialisation and are trained by one compiled
step on the same batches, each on its own cross-entropy. The loop evaluates
the ensemble's averaged prediction, and the scores read it (entropy, least
confidence, margin of ``(1/M) sum_m p_m``) or the members' votes (variation
ratio).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal import training
from jal.errors import JalError
from jal.models import Ensemble
from jal.strategies import base


def ensemble_loss(apply_fn, variables, images, labels, mask, key, progress):
  """The sum over members of each member's cross-entropy (a `jal.training.LossFn`).

  Members share no parameters, so the gradient of the sum is each member's own
  gradient: M independent trainings in one step. ``loss`` is reported as the
  members' mean, ``accuracy`` as the ensemble's.
  """
  del progress
  outputs, new_state = apply_fn(variables, images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  members = outputs['members']  # [B, M, C]
  per_member = optax.softmax_cross_entropy_with_integer_labels(
      members, labels[:, None])  # [B, M]
  member_losses = jax.vmap(training.masked_mean, in_axes=(1, None))(per_member, mask)  # [M]
  accuracy = training.masked_mean(
      (jnp.argmax(outputs['classifier'], -1) == labels).astype(jnp.float32), mask)
  return jnp.sum(member_losses), (new_state['batch_stats'],
                                  {'loss': jnp.mean(member_losses), 'accuracy': accuracy})


class EnsembleStrategy(base.TaskScoreStrategy):
  """A `TaskScoreStrategy` whose task model is an ensemble of M members."""

  task_loss = staticmethod(ensemble_loss)

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    if self.strategy_config.num_members < 2:
      raise JalError(f'config.strategy.num_members={self.strategy_config.num_members} must be '
                     'at least 2 for an ensemble')

  def task_model(self, num_classes: int) -> Ensemble:
    return Ensemble(super().task_model(num_classes), self.strategy_config.num_members)
