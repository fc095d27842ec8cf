"""Tests of CoreSet's k-center greedy (Sener & Savarese, ICLR 2018, Algorithm 1).

The reference is Algorithm 1 as the paper writes it, in float64 NumPy: at
every step, the Euclidean distance of each unchosen point to every point of
``s`` (labeled centers and picks so far), its minimum, and the argmax. It
shares nothing with the JAX code's running minimum, blocks or matmul.
"""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import checkpoint, experiment, sharding
from jal.acquisition.coreset import k_center_greedy
from jal.errors import JalError
from jal.pool import Pool
from jal.strategies import base
from conftest import build_strategy, tiny_config

# The JAX code works in float32; the reference in float64. Their picks can
# only differ where two points' distances are within float32 rounding (about
# 1e-7 relative), so every fixture checks that the reference's argmax wins by
# more than this, except for exact ties (duplicated points).
MIN_RELATIVE_GAP = 1e-5


def reference_k_center_greedy(points: np.ndarray, centers: np.ndarray, k: int):
  """Algorithm 1 of Sener & Savarese, with ties to the lowest index.

  ``u = argmax_{i in [n] \\ s} min_{j in s} Delta(x_i, x_j)``, ``s = s ∪ {u}``,
  ``k`` times, from ``s`` = the centers. With ``s`` empty the minimum is
  ``+inf`` for every point, so the first pick is point 0.

  Returns:
    The picks, int ``[k]``, and the smallest relative margin by which an
    argmax beat the best value strictly below it (exact ties excluded).
  """
  x = np.asarray(points, np.float64)
  s = [c for c in np.asarray(centers, np.float64)]
  chosen = np.zeros(len(x), bool)
  picks, smallest_gap = [], np.inf
  for _ in range(k):
    if s:
      dist = np.sqrt(((x[:, None, :] - np.stack(s)[None, :, :]) ** 2).sum(-1)).min(axis=1)
    else:
      dist = np.full(len(x), np.inf)
    dist[chosen] = -np.inf
    u = int(np.argmax(dist))
    below = dist[dist < dist[u]]
    if np.isfinite(dist[u]) and dist[u] > 0 and below.size and np.isfinite(below.max()):
      smallest_gap = min(smallest_gap, (dist[u] - below.max()) / dist[u])
    picks.append(u)
    chosen[u] = True
    s.append(x[u])
  return np.asarray(picks), smallest_gap


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


class _FeatureTask:
  """A stand-in task model whose penultimate features are a fixed table."""

  def __init__(self, features):
    self.features = features

  def predict(self, images, indices, fn):
    return np.asarray(fn({'features': jnp.asarray(self.features[indices])}))


def test_strategy_queries_the_reference_picks_among_candidates():
  rng = np.random.default_rng(8)
  features = rng.standard_normal((100, 12)).astype(np.float32)
  labeled = rng.choice(100, 10, replace=False)
  candidates = np.setdiff1d(np.arange(100), labeled)[::2]  # a candidate subset
  config = tiny_config('coreset')
  mesh = sharding.make_mesh()
  strategy, dataset = build_strategy(config, mesh=mesh)
  pool = Pool(num_train=100, labeled=labeled.astype(np.int64),
              oracle_labels=np.zeros(10, np.int32))
  ctx = base.RoundContext(config=config, data=dataset.pool_data(), round=0, pool=pool, images=None,
                          labels=None, candidates=candidates, task=_FeatureTask(features),
                          mesh=mesh)
  query = strategy.query(ctx, 15)
  expected, gap = reference_k_center_greedy(features[candidates], features[labeled], 15)
  assert gap > MIN_RELATIVE_GAP
  assert query.dtype == np.int64
  np.testing.assert_array_equal(query, candidates[expected])
  assert strategy.query(ctx, 1000).size == candidates.size  # clipped to the candidates
  features[candidates[3], 0] = np.nan
  with pytest.raises(JalError, match='NaN'):
    strategy.query(ctx, 15)


def test_one_round_through_the_experiment_loop(tmp_path):
  """Features go to the device explicitly: no implicit transfer in the round."""
  with jax.transfer_guard('disallow'):
    records = experiment.run(tiny_config('coreset'), str(tmp_path / 'run'))
  assert len(records) == 2
  assert [r['query_size'] for r in records] == [20, 0]
  assert [r['num_labeled'] for r in records] == [30, 50]
  labeled = checkpoint.Checkpointer(str(tmp_path / 'run' / 'checkpoints')).latest().pool.labeled
  initial, query = labeled[:30], labeled[30:]
  assert query.size == 20 and np.unique(query).size == 20
  assert not np.isin(query, initial).any()
