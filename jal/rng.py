"""Deterministic randomness: every key and NumPy generator derives from the seed.

A round's randomness depends only on ``(seed, purpose, round)``, never on what
ran before it in the same process, so a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import zlib

import jax
import jax.numpy as jnp
import numpy as np


def _purpose_id(purpose: str) -> int:
  return zlib.crc32(purpose.encode()) & 0x7FFFFFFF


def key(seed: int, purpose: str, *indices: int) -> jax.Array:
  """A JAX PRNG key for one purpose (e.g. ``'task_init'``), folded with indices.

  Equal to ``fold_in(... fold_in(jax.random.key(seed), id(purpose)) ...,
  indices[-1])``, built from one explicit host-to-device transfer, so key
  creation is allowed under ``jax.transfer_guard('disallow')``.

  Args:
    seed: the experiment's ``config.seed``, ``0 <= seed < 2**32``.
    purpose: a name that separates streams that must not be correlated.
    *indices: e.g. the round number, then a step or sub-query number; each
      ``0 <= i < 2**32``.

  Returns:
    A typed threefry PRNG key.
  """
  # jax.random.key(seed) holds the words (seed >> 32, seed & 0xFFFFFFFF).
  words = np.array([seed >> 32, seed & 0xFFFFFFFF, _purpose_id(purpose), *indices], np.uint32)
  return _fold_words(jax.device_put(words))


@jax.jit
def _fold_words(words: jax.Array) -> jax.Array:
  k = jax.random.wrap_key_data(words[:2], impl='threefry2x32')
  for i in range(2, words.shape[0]):
    k = jax.random.fold_in(k, words[i])
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


def init_key(key: jax.Array) -> jax.Array:
  """A key for parameter initialisers, derived deterministically from ``key``.

  Initialisers draw every parameter tensor at once; with threefry keys
  XLA:CPU compiles those draws slowly, with keys of XLA's
  ``RngBitGenerator`` (``'rbg'``) several times faster (``BENCHMARKS.md``). Only
  initialisation uses it: dropout, augmentation and batch orders keep
  threefry, whose streams are the same on every backend. (``rbg`` streams may
  differ across backends, so the same seed can give other initial weights on
  a GPU than on a CPU.)

  Args:
    key: a typed PRNG key (any implementation).

  Returns:
    A typed ``rbg`` key.
  """
  return jax.random.wrap_key_data(jax.random.bits(key, (4,), jnp.uint32), impl='rbg')
