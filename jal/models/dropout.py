"""Dropout that is on whenever the caller supplies a ``'dropout'`` PRNG stream.

MC-dropout methods (BALD, DBAL; Gal & Ghahramani 2016, Gal et al. 2017) need
dropout in training and in their stochastic scoring passes, but not when the
model is evaluated, while batch norm must use its running averages in both
scoring and evaluation. So dropout here does not follow ``train``: it is
active exactly when ``apply`` is given ``rngs={'dropout': key}`` (the train
step always passes one; `jal.training.Trainer.predict` never does).
"""

from __future__ import annotations

import flax.linen as nn
import jax


def mc_dropout(module: nn.Module, x: jax.Array, rate: float) -> jax.Array:
  """Inverted dropout of ``x`` with ``rate`` inside ``module``, if a stream is given.

  Args:
    module: the calling module (dropout becomes one of its submodules).
    x: any array.
    rate: probability of zeroing an element, in ``[0, 1)``; 0 adds no layer.

  Returns:
    ``x`` with elements zeroed with probability ``rate`` and the others scaled
    by ``1 / (1 - rate)`` when ``module`` has a ``'dropout'`` PRNG stream,
    else ``x`` unchanged.
  """
  if rate == 0.0:
    return x
  return nn.Dropout(rate, deterministic=not module.has_rng('dropout'))(x)
