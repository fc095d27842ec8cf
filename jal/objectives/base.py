"""What an objective receives and returns, and the masked mean every objective uses."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct


class Batch(struct.PyTreeNode):
  """One training batch, of a fixed shape (the last batch of an epoch padded).

  Attributes:
    images: float32 ``[B, H, W, C]``, augmented and normalised.
    labels: int32 ``[B]`` (the oracle's labels; -1 where there is none).
    mask: float32 ``[B]``: 1 for a real example, 0 for padding.
  """
  images: jax.Array
  labels: jax.Array
  mask: jax.Array


# loss_fn(apply_fn, variables, batch, key, progress) -> (loss, (batch_stats, metrics)):
#   apply_fn the network's flax apply; variables {'params', 'batch_stats'};
#   batch a `Batch`; key a PRNG key (dropout, sampling); progress a float32
#   scalar, the fraction of the fit's epochs finished before this one (0 in the
#   first), for objectives that change during training (Learning Loss stops the
#   loss-prediction gradient into the backbone at 0.6). Returns the scalar loss
#   that is differentiated, the new batch statistics and a dict of float32
#   scalar metrics (at least 'loss'), each a mean over the batch's real examples.
LossFn = Callable[..., tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]]


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """The mean of ``values`` weighted by ``mask``: ``sum(m v) / max(sum(m), 1)``.

  The one masked mean of jal. Entries with ``mask == 0`` are dropped, not
  multiplied (``jnp.where``), so padding may hold anything, even ``inf`` or
  NaN, without reaching the result or its gradient.

  Args:
    values: float ``[B]``.
    mask: float or bool ``[B]``, ``>= 0``: 1 for a real example, 0 for
      padding (fractional weights are allowed).

  Returns:
    float32 scalar; 0 when the mask is all zero.
  """
  mask = jnp.asarray(mask).astype(jnp.float32)
  total = jnp.sum(jnp.where(mask > 0, values * mask, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1.0)
