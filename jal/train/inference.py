"""Mapping a compiled function over an index array in fixed-size batches.

Every pass over the pool or the test split (evaluation, scoring, feature
extraction) goes through `map_batches`: the indices are cut into batches of one
fixed size (the last padded), so each function is compiled once whatever the
pool size, and results stay on the device until one transfer at the end.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import jax
from jax.experimental import multihost_utils
import numpy as np


def padded_batches(indices: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
  """Yields ``(batch, num_valid)``; the last batch is padded by repeating its own indices.

  The padding rows are real members of the set (copies of the batch's
  first entries), so a function that normalises by the batch's own
  statistics (VAAL's and MAL's scoring in train-mode batch norm) sees the
  set's statistics, not those of an arbitrary image 0.

  Args:
    indices: int with shape ``[n]``.
    batch_size: the fixed batch size.

  Yields:
    int32 arrays of shape ``[batch_size]`` and how many leading entries are real.
  """
  indices = np.asarray(indices, np.int32)
  for start in range(0, indices.shape[0], batch_size):
    batch = indices[start:start + batch_size]
    valid = batch.shape[0]
    if valid < batch_size:
      batch = np.resize(batch, batch_size)
    yield batch, valid


def map_batches(fn: Callable[..., Any], args: tuple, indices: np.ndarray, batch_size: int,
                sharding: jax.sharding.Sharding, on_device: bool = False) -> Any:
  """Applies ``fn(*args, batch_indices)`` over ``indices`` and concatenates.

  Args:
    fn: a jitted function of ``(*args, idx)`` with ``idx`` int32 ``[batch_size]``
      returning a pytree of arrays with leading axis ``batch_size``.
    args: the leading arguments (variables, device images, ...).
    indices: int with shape ``[n]``.
    batch_size: fixed batch size (a multiple of the number of devices).
    sharding: how a batch of indices is placed (split over the ``'data'`` axis).
    on_device: keep the result on the device (one process only): the
      batches joined there, their padding kept, so nothing crosses to the
      host (CoreSet's features go straight into its greedy).

  Returns:
    The pytree of NumPy arrays with leading axis ``n``; with ``on_device``,
    of device arrays with leading axis ``n`` rounded up to a multiple of
    ``batch_size`` (rows from ``n`` on repeat the last batch's indices).
  """
  indices = np.asarray(indices)
  if indices.size == 0:
    raise ValueError('map_batches over an empty index array')
  outputs = [fn(*args, jax.device_put(batch, sharding))
             for batch, _ in padded_batches(indices, batch_size)]
  if on_device and jax.process_count() == 1:
    return jax.tree.map(lambda *xs: jax.numpy.concatenate(xs), *outputs)
  # Fetched once at the end (dispatch stays asynchronous until then), joined
  # and cut to ``n`` on the host. With several processes (multi-host) each
  # holds only its devices' part of a batch: gather them all.
  if jax.process_count() > 1:
    outputs = multihost_utils.process_allgather(outputs, tiled=True)
  else:
    outputs = jax.device_get(outputs)
  return jax.tree.map(lambda *xs: np.concatenate(xs)[:indices.shape[0]], *outputs)
