"""Tests of jal.rng: JAX keys and NumPy generators are deterministic per (seed, purpose, indices)
and differ across seeds, purposes and indices, a trailing zero index included."""

from __future__ import annotations

import jax
import numpy as np

from jal import rng


def _key_bits(k) -> np.ndarray:
  return np.asarray(jax.random.key_data(k))


def test_key_is_deterministic():
  np.testing.assert_array_equal(_key_bits(rng.key(0, 'task_init', 3)),
                                _key_bits(rng.key(0, 'task_init', 3)))
  a = jax.random.uniform(rng.key(5, 'task_augment', 1, 2), (3,))
  b = jax.random.uniform(rng.key(5, 'task_augment', 1, 2), (3,))
  np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_key_differs_across_seeds_purposes_and_indices():
  keys = [
      rng.key(0, 'task_init'),
      rng.key(1, 'task_init'),
      rng.key(0, 'task_augment'),
      rng.key(0, 'task_init', 0),
      rng.key(0, 'task_init', 1),
      rng.key(0, 'task_init', 1, 0),
      rng.key(0, 'task_init', 1, 2),
      rng.key(0, 'task_init', 2, 1),
  ]
  bits = {_key_bits(k).tobytes() for k in keys}
  assert len(bits) == len(keys)


def test_numpy_rng_is_deterministic():
  a = rng.numpy_rng(3, 'oracle', 2).integers(0, 2**31, size=8)
  b = rng.numpy_rng(3, 'oracle', 2).integers(0, 2**31, size=8)
  np.testing.assert_array_equal(a, b)


def test_numpy_rng_differs_across_seeds_purposes_and_indices():
  streams = [
      rng.numpy_rng(0, 'oracle', 1),
      rng.numpy_rng(1, 'oracle', 1),
      rng.numpy_rng(0, 'task_data', 1),
      rng.numpy_rng(0, 'oracle', 2),
      rng.numpy_rng(0, 'oracle', 1, 2),
      rng.numpy_rng(0, 'oracle', 2, 1),
      rng.numpy_rng(0, 'initial_pool'),
  ]
  draws = {s.integers(0, 2**62, size=4).tobytes() for s in streams}
  assert len(draws) == len(streams)


def test_numpy_rng_trailing_zero_index_is_a_different_stream():
  a = rng.numpy_rng(0, 'oracle').integers(0, 2**62, size=4)
  b = rng.numpy_rng(0, 'oracle', 0).integers(0, 2**62, size=4)
  assert not np.array_equal(a, b)
