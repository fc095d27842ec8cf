"""Deterministic randomness: every key and NumPy generator derives from the seed.

A round's randomness depends only on ``(seed, purpose, round)``, never on what
ran before it in the same process, so a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import zlib

import jax
import numpy as np


def _purpose_id(purpose: str) -> int:
  return zlib.crc32(purpose.encode()) & 0x7FFFFFFF


def key(seed: int, purpose: str, *indices: int) -> jax.Array:
  """A JAX PRNG key for one purpose (e.g. ``'task_init'``), folded with indices.

  Args:
    seed: the experiment's ``config.seed``.
    purpose: a name that separates streams that must not be correlated.
    *indices: e.g. the round number, then a step or sub-query number.

  Returns:
    A typed PRNG key (``jax.random.key``).
  """
  k = jax.random.fold_in(jax.random.key(seed), _purpose_id(purpose))
  for i in indices:
    k = jax.random.fold_in(k, i)
  return k


def numpy_rng(seed: int, purpose: str, *indices: int) -> np.random.Generator:
  """A NumPy generator for host-side randomness (pool choice, batch order).

  Args:
    seed: the experiment's ``config.seed``.
    purpose: a name for the stream.
    *indices: e.g. the round number.

  Returns:
    A ``numpy.random.Generator`` seeded from ``(seed, purpose, *indices)``.
  """
  # The count of indices goes first: SeedSequence ignores trailing zeros, so
  # (purpose, 0) would otherwise draw the same stream as (purpose,).
  entropy = [seed, _purpose_id(purpose), len(indices), *indices]
  return np.random.default_rng(np.random.SeedSequence(entropy))
