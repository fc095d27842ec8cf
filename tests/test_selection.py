"""Tests of jal.selection.top_k and of PAL's split of a query into sub-queries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jal.selection import top_k
from jal.strategies.pal import subquery_sizes

_SETTINGS = settings(max_examples=50, deadline=None)


def _reference_top_k(scores, candidates, k):
  """Sort by score descending, then by position in the candidate list."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  return [candidates[i] for i in order[:k]]


def test_top_k_picks_the_highest():
  scores = np.array([0.1, 0.9, -3.0, 0.5, 0.7])
  candidates = np.array([10, 11, 12, 13, 14])
  got = top_k(scores, candidates, 3)
  assert got.dtype == np.int64
  assert got.tolist() == [11, 14, 13]  # best first


def test_top_k_ties_go_to_the_candidate_listed_first():
  scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
  assert top_k(scores, np.array([50, 40, 30, 20, 10]), 2).tolist() == [40, 30]
  assert top_k(scores, np.array([50, 40, 30, 20, 10]), 3).tolist() == [40, 30, 10]
  # The listed order decides, not the index value.
  assert top_k(np.zeros(4), np.array([7, 3, 9, 1]), 4).tolist() == [7, 3, 9, 1]


def test_top_k_clips_k():
  got = top_k(np.array([0.2, 0.8]), np.array([5, 6]), 10)
  assert got.tolist() == [6, 5]
  assert top_k(np.array([0.2, 0.8]), np.array([5, 6]), 0).tolist() == []
  assert top_k(np.zeros(0), np.zeros(0, np.int64), 3).shape == (0,)


def test_top_k_handles_infinities():
  # PAL masks out already-chosen candidates with -inf.
  scores = np.array([-np.inf, 1.0, np.inf, -np.inf, 0.0])
  assert top_k(scores, np.arange(5), 3).tolist() == [2, 1, 4]
  assert top_k(scores, np.arange(5), 5).tolist() == [2, 1, 4, 0, 3]


def test_top_k_nan_raises():
  with pytest.raises(ValueError, match='NaN'):
    top_k(np.array([0.1, np.nan, 0.3]), np.array([0, 1, 2]), 1)


def test_top_k_shape_mismatch_raises():
  with pytest.raises(ValueError):
    top_k(np.array([0.1, 0.2]), np.array([0, 1, 2]), 1)


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_top_k_matches_reference(data):
  n = data.draw(st.integers(0, 40))
  # Few distinct values, so ties are common.
  scores = data.draw(st.lists(st.sampled_from([-np.inf, -1.5, 0.0, 0.25, 2.0, np.inf]),
                              min_size=n, max_size=n))
  candidates = data.draw(st.lists(st.integers(0, 10_000), min_size=n, max_size=n, unique=True))
  k = data.draw(st.integers(0, n + 3))
  got = top_k(np.array(scores, np.float32), np.array(candidates, np.int64), k)
  assert got.tolist() == _reference_top_k(scores, candidates, k)


# --------------------------------------------------------------------------- subquery_sizes


@_SETTINGS
@given(budget=st.integers(1, 10_000), num_subqueries=st.integers(1, 50))
def test_subquery_sizes(budget, num_subqueries):
  sizes = subquery_sizes(budget, num_subqueries)
  assert sum(sizes) == budget
  assert len(sizes) == min(budget, num_subqueries)
  assert max(sizes) - min(sizes) <= 1
  assert min(sizes) >= 1
  assert sizes == sorted(sizes, reverse=True)  # larger first


def test_subquery_sizes_examples():
  assert subquery_sizes(10, 3) == [4, 3, 3]
  assert subquery_sizes(12, 4) == [3, 3, 3, 3]
  assert subquery_sizes(5, 1) == [5]
  assert subquery_sizes(3, 5) == [1, 1, 1]  # K > budget: one each
  assert subquery_sizes(1, 4) == [1]


def test_top_k_breaks_ties_by_the_secondary_score_then_by_position():
  scores = np.array([1.0, 2.0, 2.0, 2.0, 0.0])
  tie_break = np.array([9.0, 0.5, 0.7, 0.5, 9.0])
  candidates = np.array([10, 11, 12, 13, 14])
  assert top_k(scores, candidates, 5, tie_break=tie_break).tolist() == [12, 11, 13, 10, 14]
  with pytest.raises(ValueError, match='NaN'):
    top_k(scores, candidates, 1, tie_break=np.full(5, np.nan))


@_SETTINGS
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=0, max_size=30),
       st.integers(0, 35))
def test_top_k_with_tie_break_matches_a_lexicographic_sort(pairs, k):
  scores = np.array([p[0] for p in pairs], np.float64)
  secondary = np.array([p[1] for p in pairs], np.float64)
  candidates = np.arange(100, 100 + len(pairs))
  order = sorted(range(len(pairs)), key=lambda i: (-scores[i], -secondary[i], i))
  want = [candidates[i] for i in order[:k]]
  assert top_k(scores, candidates, k, tie_break=secondary).tolist() == want
