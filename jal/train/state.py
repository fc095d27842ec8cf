"""The state a train step reads and writes, and one optimiser update of it."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
  """Everything a train step reads and writes; donated to the step.

  Attributes:
    step: int32 scalar, the updates made so far.
    params: the network's parameters.
    batch_stats: its batch-norm statistics (``{}`` without batch norm).
    opt_state: the optimiser's state (`jal.train.optim.make_optimizer`).
  """
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict[str, Any]:
    return {'params': self.params, 'batch_stats': self.batch_stats}


def init_state(tx: optax.GradientTransformation, variables: dict[str, Any]) -> TrainState:
  """A `TrainState` of freshly initialised ``variables`` and ``tx``'s zero state."""
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params))


def with_learning_rate(opt_state: Any, learning_rate: jax.Array) -> Any:
  """``opt_state`` of a `jal.train.optim.make_optimizer` optimiser with its learning rate set."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, 'learning_rate': learning_rate})


def apply_gradients(tx: optax.GradientTransformation, state: TrainState, grads: Any,
                    batch_stats: Any, learning_rate: jax.Array) -> TrainState:
  """One step of ``tx`` (a `jal.train.optim.make_optimizer` optimiser) on ``state``.

  For the auxiliary networks updated inside a compiled step (a VAE, a
  discriminator), whose batch-norm statistics ``batch_stats`` come from the
  same forward pass as ``grads``.
  """
  opt_state = with_learning_rate(state.opt_state, learning_rate)
  updates, opt_state = tx.update(grads, opt_state, state.params)
  return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                    batch_stats=batch_stats, opt_state=opt_state)
