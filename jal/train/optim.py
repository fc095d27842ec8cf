"""Optimisers and learning-rate schedules, built from a config with optax.

The learning rate is injected as a hyperparameter (``optax.inject_hyperparams``)
and set by the host once per epoch, so one compiled train step serves every
round even though the number of steps per epoch grows with the labeled pool.
"""

from __future__ import annotations

import ml_collections
import optax

from jal.errors import JalError


def make_optimizer(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """The optimiser named by ``cfg.optimizer``.

  Args:
    cfg: a train config with ``optimizer`` (``'sgd'`` or ``'adam'``),
      ``learning_rate``, ``momentum`` (sgd), ``weight_decay`` (coupled L2, as
      PyTorch's ``weight_decay``: added to the gradient before momentum).

  Returns:
    An optax transformation whose state holds ``hyperparams['learning_rate']``.

  Raises:
    JalError: for an unknown optimizer name or a negative rate.
  """
  if cfg.learning_rate <= 0:
    raise JalError(f'learning_rate={cfg.learning_rate} must be positive')
  weight_decay = cfg.get('weight_decay', 0.0)
  if cfg.optimizer == 'sgd':
    momentum = cfg.get('momentum', 0.0)

    def build(learning_rate):
      return optax.chain(optax.add_decayed_weights(weight_decay),
                         optax.sgd(learning_rate, momentum=momentum or None))
  elif cfg.optimizer == 'adam':

    def build(learning_rate):
      return optax.chain(optax.add_decayed_weights(weight_decay), optax.adam(learning_rate))
  else:
    raise JalError(f"optimizer '{cfg.optimizer}' is unknown; use 'sgd' or 'adam'")
  return optax.inject_hyperparams(build)(learning_rate=cfg.learning_rate)


def learning_rate(cfg: ml_collections.ConfigDict, epoch: int, epochs: int | None = None) -> float:
  """The learning rate for ``epoch`` (0-based) under ``cfg.lr_schedule``.

  ``epochs`` (default ``cfg.epochs``) is the length of the schedule: a
  network trained alongside another (VAAL's VAE) follows the other's epochs.

  Schedules, all in epochs so they stay the same whatever the pool size:
    ``'constant'``; ``'multistep'``: times ``cfg.lr_decay`` (default 0.1) at
    each of ``cfg.lr_milestones``, given as fractions of ``cfg.epochs``
    (0.8 of 200 epochs is the papers' "x0.1 at epoch 160"); ``'cosine'``:
    cosine decay to 0 over ``cfg.epochs``.

  Raises:
    JalError: for an unknown schedule.
  """
  name = cfg.get('lr_schedule', 'constant')
  epochs = cfg.epochs if epochs is None else epochs
  if name == 'constant':
    return float(cfg.learning_rate)
  if name == 'multistep':
    boundaries = {int(round(m * epochs)): cfg.get('lr_decay', 0.1)
                  for m in cfg.get('lr_milestones', ())}
    schedule = optax.piecewise_constant_schedule(cfg.learning_rate, boundaries)
  elif name == 'cosine':
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, max(1, epochs))
  else:
    raise JalError(f"lr_schedule '{name}' is unknown; use 'constant', 'multistep' or 'cosine'")
  return float(schedule(epoch))
