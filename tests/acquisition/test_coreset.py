"""Tests of jal.acquisition.coreset, CoreSet's k-center greedy (Sener & Savarese 2018, Algorithm
1), against Algorithm 1 as the paper writes it in float64 NumPy
(helpers.reference_k_center_greedy), which shares nothing with the JAX code's running minimum,
blocks or matmul; with labeled centers or none, far from the origin, duplicated and non-finite
points, and a memory linear in the points."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import MIN_RELATIVE_GAP, reference_k_center_greedy
from jal.acquisition.coreset import k_center_greedy


def _gaussian(seed, n, m, d):
  rng = np.random.default_rng(seed)
  return (rng.standard_normal((n, d)).astype(np.float32),
          rng.standard_normal((m, d)).astype(np.float32))


def _check_against_reference(points, centers, k):
  expected, gap = reference_k_center_greedy(points, centers, k)
  assert gap > MIN_RELATIVE_GAP, f'fixture has a near tie ({gap:.2g}); pick another'
  picks = k_center_greedy(jnp.asarray(points), jnp.asarray(centers), k)
  chex.assert_shape(picks, (k,))
  chex.assert_type(picks, jnp.int32)
  picks = np.asarray(picks)
  np.testing.assert_array_equal(picks, expected)
  assert len(set(picks.tolist())) == k
  return picks


@pytest.mark.parametrize('seed, n, m, d, k', [
    (0, 300, 40, 16, 60),
    (1, 500, 300, 8, 40),     # 3 blocks of centers, the last overlapping
    (2, 200, 1, 32, 50),
])
def test_matches_reference_with_labeled_centers(seed, n, m, d, k):
  points, centers = _gaussian(seed, n, m, d)
  _check_against_reference(points, centers, k)


def test_matches_reference_far_from_the_origin():
  """Features with a large common offset (like post-ReLU features).

  The matmul expansion alone loses about ``eps |x|^2`` to cancellation here and
  changes picks; the direct recomputation of the distances keeps them exact.
  """
  points, centers = _gaussian(3, 300, 200, 16)
  _check_against_reference(points + 30.0, centers + 30.0, 40)


def test_matches_float64_algorithm_1_on_features_offset_by_100():
  """Features offset by +100 with spread 1 (2,000 x 32, 200 centers, k = 100): before the
  centring, the expansion chose wrong nearest centers and 4 picks of seed 0 and 2 of seed 4
  differed from float64 Algorithm 1 (6 of the 600 picks of seeds 0-5)."""
  for seed in (0, 4):
    rng = np.random.default_rng(seed)
    points = (rng.standard_normal((2000, 32)) + 100).astype(np.float32)
    centers = (rng.standard_normal((200, 32)) + 100).astype(np.float32)
    picks = k_center_greedy(jnp.asarray(points), jnp.asarray(centers), 100)
    np.testing.assert_array_equal(np.asarray(picks), _float64_greedy(points, centers, 100))


def _float64_greedy(points, centers, k):
  """Algorithm 1 in float64 by direct differences, its minimum kept as it goes (the same
  picks as `reference_k_center_greedy`, which recomputes every minimum, in a fraction of the
  time)."""
  x, c = np.asarray(points, np.float64), np.asarray(centers, np.float64)
  nearest = np.min(((x[:, None, :] - c[None, :, :]) ** 2).sum(-1), axis=1)
  picks = []
  for _ in range(k):
    u = int(np.argmax(nearest))
    picks.append(u)
    nearest = np.minimum(nearest, ((x - x[u]) ** 2).sum(-1))
    nearest[picks] = -np.inf
  return np.asarray(picks)


def test_the_fast_float64_greedy_is_algorithm_1():
  points, centers = _gaussian(7, 120, 30, 8)
  np.testing.assert_array_equal(_float64_greedy(points + 100, centers + 100, 20),
                                reference_k_center_greedy(points + 100, centers + 100, 20)[0])


def test_no_centers_starts_from_point_zero():
  points, _ = _gaussian(4, 150, 0, 8)
  picks = _check_against_reference(points, np.zeros((0, 8), np.float32), 30)
  assert picks[0] == 0


def test_duplicated_points_are_never_picked_twice():
  rng = np.random.default_rng(5)
  unique = rng.standard_normal((40, 6)).astype(np.float32)
  points = unique[rng.permutation(np.repeat(np.arange(40), 3))]  # each point 3 times
  centers = unique[:5].copy()  # 15 points at distance 0 from a center
  # 35 distinct unlabeled features: the last 25 picks are among zero distances.
  picks = _check_against_reference(points, centers, 60)
  np.testing.assert_array_equal(np.sort(np.unique(points[picks[:35]], axis=0), axis=0),
                                np.sort(unique[5:], axis=0))


def test_k_equals_n_picks_every_point_once():
  points, centers = _gaussian(6, 64, 10, 4)
  picks = _check_against_reference(points, centers, 64)
  np.testing.assert_array_equal(np.sort(picks), np.arange(64))


def test_k_zero_and_bad_k():
  points, centers = _gaussian(7, 10, 3, 4)
  chex.assert_shape(k_center_greedy(points, centers, 0), (0,))
  with pytest.raises(ValueError, match='k=11'):
    k_center_greedy(points, centers, 11)
  with pytest.raises(ValueError, match='same d'):
    k_center_greedy(points, centers[:, :3], 2)


def test_non_finite_features_still_give_distinct_picks():
  points, centers = _gaussian(9, 20, 3, 4)
  points[[2, 7]] = np.nan
  points[11, 0] = np.inf
  picks = np.asarray(k_center_greedy(points, centers, 20))
  np.testing.assert_array_equal(np.sort(picks), np.arange(20))


def test_memory_is_linear_in_the_points():
  """A million 512-d points and 10,000 centers, compiled but not run.

  ``[n, m]`` float32 would be 40 GB; the points themselves are 2 GB. Checked
  twice: XLA's buffer assignment (temp bytes) and, independently, the largest
  array shape anywhere in the optimized HLO (fusions included).
  """
  n, m, d = 1_000_000, 10_000, 512
  compiled = k_center_greedy.lower(jax.ShapeDtypeStruct((n, d), jnp.float32),
                                   jax.ShapeDtypeStruct((m, d), jnp.float32), k=100).compile()
  points_bytes = n * d * 4
  stats = compiled.memory_analysis()
  assert stats is not None, 'memory_analysis is unavailable: rely on the HLO check alone'
  assert stats.temp_size_in_bytes < 2 * points_bytes
  assert stats.temp_size_in_bytes < n * m * 4 / 50
  shapes = re.findall(r'\b(?:f32|s32|pred|f64|s64|u32)\[([\d,]+)\]', compiled.as_text())
  assert shapes
  largest = max(int(np.prod([int(s) for s in shape.split(',')])) for shape in shapes)
  assert largest <= n * d, largest
