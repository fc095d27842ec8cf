"""Data parallelism: one ``('data',)`` mesh over all devices (of every host).

Parameters and the uint8 dataset are replicated; batches (index arrays) are
sharded along their leading axis, and XLA partitions the compiled steps. Batch
norm statistics are reduced over the global batch, so a run on several devices
computes what a run on one device computes.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from jal.errors import JalError


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh named ``'data'`` over ``devices``.

  The default is ``jax.devices()``: every device of every process, so after
  ``jax.distributed.initialize()`` a multi-host run is one data-parallel mesh.
  """
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P('data'))


def check_batch_size(batch_size: int, mesh: Mesh, what: str) -> None:
  """Raises a one-line error if ``batch_size`` does not split over the mesh."""
  n = mesh.devices.size
  if batch_size % n:
    raise JalError(f'{what}={batch_size} must be a multiple of the {n} devices; '
                   f'set it to {max(n, batch_size // n * n)} or run on fewer devices')
