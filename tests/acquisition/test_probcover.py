"""Tests of jal.acquisition.probcover (Yehuda et al. 2022): the greedy cover of Algorithm 1 on
points of a line with known optimal picks and a NumPy reference, the labeled pool's balls
covering first, the order of picks once all is covered, and the purity rule of Sec. 4.1 for δ."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from jal.acquisition import probcover


def reference_greedy(x, delta, labeled, k):
  """Algorithm 1: cover the labeled balls, then k times the point covering most uncovered."""
  x = np.asarray(x, np.float64)
  adj = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)) < delta
  covered = adj[labeled].any(axis=0) if len(labeled) else np.zeros(len(x), bool)
  picks = []
  for _ in range(k):
    degree = (adj & ~covered[None]).sum(1)
    degree[list(labeled) + picks] = -1
    u = int(np.argmax(degree))
    picks.append(u)
    covered |= adj[u]
  return picks, covered.sum()


def _cover(x, delta, labeled=(), k=3, block=4):
  n = len(x)
  lab = np.zeros(n, bool)
  lab[list(labeled)] = True
  picks, covered = probcover.greedy_cover(
      jnp.asarray(x, jnp.float32), jnp.float32(delta), jnp.asarray(lab), jnp.asarray(~lab),
      jnp.ones(n, bool), jnp.arange(n, dtype=jnp.float32)[::-1], k, block=block)
  return list(np.asarray(picks)), int(covered)


# Groups on a line: 5 points at 0..4, 3 at 10..12, 2 at 20..21, one at 30. With δ = 2.5 only 2's
# ball holds all of 0..4 (1's holds 0..3), any of 10..12 holds its group (the lowest index, 10,
# wins the tie), 20 or 21 their pair: the optimal 3 picks cover 10 points.
LINE = np.array([0, 1, 2, 3, 4, 10, 11, 12, 20, 21, 30], np.float32)[:, None]


def test_greedy_cover_on_a_line_picks_the_group_centres():
  picks, covered = _cover(LINE, 2.5, k=3)
  assert picks == [2, 5, 8] and covered == 10
  assert (picks, covered) == reference_greedy(LINE, 2.5, [], 3)


def test_labeled_balls_cover_first_and_then_the_fallback_order():
  picks, covered = _cover(LINE, 2.5, labeled=[1], k=3)  # 1's ball covers 0..3
  assert (picks, covered) == reference_greedy(LINE, 2.5, [1], 3)
  # 10..12 (3 new), 20..21 (2), then 4 alone: 2 (the lowest index whose ball holds it).
  assert picks == [5, 8, 2] and covered == 10
  # Everything is covered after 4 picks; the later ones follow the priority (the highest first:
  # here the lowest index), never a repeat.
  picks, covered = _cover(LINE, 2.5, k=8)
  assert picks == [2, 5, 8, 10, 0, 1, 3, 4] and covered == 11


def test_greedy_cover_matches_the_reference_on_random_points():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(37, 4)).astype(np.float32)
  x /= np.linalg.norm(x, axis=1, keepdims=True)
  for labeled in ([], [3, 17]):
    got = _cover(x, 0.9, labeled=labeled, k=6, block=8)
    assert got == reference_greedy(x, 0.9, labeled, 6)


def test_purity_delta_is_the_largest_radius_with_pure_balls():
  # Pseudo-labels 0 on 0..4, 1 on 10..12 and 30; 21 alone has label 0.
  labels = np.array([0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1])
  r = np.asarray(probcover.other_label_distance(jnp.asarray(LINE), jnp.asarray(labels),
                                                jnp.ones(11, bool), block=4))
  expected = np.array([10, 9, 8, 7, 6, 6, 7, 8, 8, 9, 9], np.float64)
  np.testing.assert_allclose(r, expected, rtol=1e-6)
  # Purity(δ) = fraction with r >= δ: 10 of 11 points are pure up to δ = 7 (alpha 0.9 -> the
  # 10th largest), all up to 6.
  assert probcover.purity_delta(r, 0.9) == pytest.approx(6.0)
  assert probcover.purity_delta(r, 0.5) == pytest.approx(8.0)
  assert probcover.purity(r, 8.0) >= 0.5 > probcover.purity(r, 8.01)
  with pytest.raises(ValueError, match='pure'):
    probcover.purity_delta(np.full(4, np.inf), 0.95)
