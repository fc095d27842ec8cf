"""Tests of jal.selection, the selection rules shared by the strategies and the initial pools:
top_k and its tie-breaks; highest_scores; the score bins (binned) and the per-cluster allocation
(cluster_allocation, sample_clusters, even_split) of Chandra et al. (2021); the per-class lowest
scores of SCAL, FeatureSim and DFM (per_class_lowest; Krishnan et al. 2021); and MAL's rule that a
query be in both top lists (ranks, both_conditions; Ebrahimi et al. 2020). Against hand-computed
answers, invariants drawn by hypothesis and sorted references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

# MAL's tests name the module mal_selection.
from jal import selection, selection as mal_selection
from jal.selection import binned, cluster_allocation, highest_scores, sample_clusters, top_k


_SETTINGS = settings(max_examples=50, deadline=None)


def _reference_top_k(scores, candidates, k):
  """Sort by score descending, then by position in the candidate list."""
  order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
  return [candidates[i] for i in order[:k]]


# ------------------------------------------------------------------------------- top_k


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


# ---------------------------------------------------------------------- highest scores


def test_highest_scores_best_first_and_ties_to_the_lower_index():
  scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
  np.testing.assert_array_equal(highest_scores(scores, 2), [1, 2])
  np.testing.assert_array_equal(highest_scores(scores, 4), [1, 2, 4, 3])
  np.testing.assert_array_equal(highest_scores(np.array([5, 7, 7, 5]), 3), [1, 2, 0])
  assert highest_scores(scores, 0).dtype == np.int64
  assert highest_scores(scores, 0).size == 0


def test_highest_scores_rejects_nan_and_bad_sizes():
  with pytest.raises(ValueError, match='NaN'):
    highest_scores(np.array([0.0, np.nan]), 1)
  with pytest.raises(ValueError, match='size=3'):
    highest_scores(np.zeros(2), 3)
  with pytest.raises(ValueError, match='1-D'):
    highest_scores(np.zeros((2, 2)), 1)


# ------------------------------------------------------------------------------ binned

# Descending order: 1 (.9), 5 (.8), 3 (.7), 7 (.6), 0 (.5), 8 (.4), 4 (.3), 6 (.2), 2 (.1), 9 (0).
ORDERED = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])


@pytest.mark.parametrize('size, num_bins, expected', [
    # n = 2: bins [1 5 3 7 0] and [8 4 6 2 9]; the hardest of the first, the easiest of the last.
    (4, 2, [1, 5, 9, 2]),
    (5, 2, [1, 5, 3, 9, 2]),  # 5 = 3 + 2: the remainder goes to the hardest bin
    # n = 5: bins [1 5] [3 7] [0 8] [4 6] [2 9].
    (5, 5, [1, 3, 0, 4, 9]),
    (7, 5, [1, 5, 3, 7, 0, 4, 9]),  # shares 2 2 1 1 1
    (10, 5, [1, 5, 3, 7, 0, 8, 4, 6, 9, 2]),  # everything
    # n = 3: bins of 4, 3, 3: [1 5 3 7] [0 8 4] [6 2 9]; shares 2 1 1.
    (4, 3, [1, 5, 0, 9]),
    (1, 1, [9]),  # one bin: the easiest
    (3, 1, [9, 2, 6]),
    (0, 5, []),
])
def test_binned_known_answers(size, num_bins, expected):
  chosen = binned(ORDERED, size, num_bins)
  assert chosen.dtype == np.int64
  np.testing.assert_array_equal(chosen, expected)


def test_binned_ties_keep_index_order():
  # One score for all: bins [0 1] [2 3]; the first bin's first, the last bin's last.
  np.testing.assert_array_equal(binned(np.ones(4), 2, 2), [0, 3])


@_SETTINGS
@given(n=st.integers(1, 40), num_bins=st.integers(1, 12), data=st.data())
def test_binned_takes_size_distinct_and_each_bins_share(n, num_bins, data):
  size = data.draw(st.integers(0, n))
  scores = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), float)
  chosen = binned(scores, size, num_bins)
  assert chosen.size == size and np.unique(chosen).size == size
  # Bin of each pick in the descending order; shares differ by at most one, larger first.
  order = np.lexsort((np.arange(n), -scores))
  rank = np.empty(n, int)
  rank[order] = np.arange(n)
  bounds = np.cumsum([b.size for b in np.array_split(np.arange(n), num_bins)])
  counts = np.bincount(np.searchsorted(bounds, rank[chosen], side='right'), minlength=num_bins)
  np.testing.assert_array_equal(counts, selection.even_split(size, num_bins))


def test_binned_rejects_bad_settings():
  with pytest.raises(ValueError, match='num_bins'):
    binned(ORDERED, 3, 0)
  with pytest.raises(ValueError, match='size=11'):
    binned(ORDERED, 11, 2)


# ------------------------------------------------------------------ cluster allocation


@pytest.mark.parametrize('sizes, size, expected', [
    ([10, 10, 10], 9, [3, 3, 3]),  # B / K each
    ([10, 10, 10], 10, [4, 3, 3]),  # one left over: ties to the lower index
    ([10, 10, 10], 11, [4, 4, 3]),
    ([2, 10, 10], 12, [2, 5, 5]),  # cluster 0 holds fewer than its share of 4
    ([2, 10, 10], 13, [2, 6, 5]),  # level 5, one left: clusters 1 and 2 tie
    ([2, 10, 7], 15, [2, 7, 6]),  # level 6, one left: to the largest, cluster 1
    ([1, 3, 20], 12, [1, 3, 8]),  # two small clusters give everything
    ([10, 20, 30], 4, [1, 1, 2]),  # level 1, one left: to the largest
    ([0, 5], 3, [0, 3]),  # an empty cluster
    ([2, 3], 10, [2, 3]),  # more than there is: everything
])
def test_equal_allocation_known_answers(sizes, size, expected):
  allocation = cluster_allocation(np.array(sizes), size, 'equal')
  assert allocation.dtype == np.int64
  np.testing.assert_array_equal(allocation, expected)


@pytest.mark.parametrize('sizes, size, expected', [
    ([10, 30, 60], 10, [1, 3, 6]),  # exact quotas |C_j| B / N_U
    ([10, 30, 60], 7, [1, 2, 4]),  # quotas .7 2.1 4.2: one left, to the largest remainder
    ([1, 1, 1], 2, [1, 1, 0]),  # equal remainders: the lower indices
    ([5, 5, 2], 6, [3, 2, 1]),  # quotas 2.5 2.5 1: the tie to cluster 0
    ([3, 1], 3, [2, 1]),  # quotas 2.25 .75: never more than a cluster holds
    ([2, 3], 10, [2, 3]),
    ([0, 0], 3, [0, 0]),
])
def test_proportional_allocation_known_answers(sizes, size, expected):
  allocation = cluster_allocation(np.array(sizes), size, 'proportional')
  assert allocation.dtype == np.int64
  np.testing.assert_array_equal(allocation, expected)


@_SETTINGS
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8), size=st.integers(0, 250))
def test_allocations_fit_and_sum_to_the_budget(sizes, size):
  sizes = np.array(sizes)
  budget = min(size, int(sizes.sum()))
  for mode in ('equal', 'proportional'):
    allocation = cluster_allocation(sizes, size, mode)
    assert allocation.sum() == budget
    assert (allocation >= 0).all() and (allocation <= sizes).all()
  # Equal: a cluster below the others' level gives everything it has.
  equal = cluster_allocation(sizes, size, 'equal')
  assert all(a == n or a >= equal.max() - 1 for a, n in zip(equal, sizes))
  # Proportional: within one of the exact quota |C_j| B / N_U.
  if sizes.sum():
    quota = sizes * budget / sizes.sum()
    assert (np.abs(cluster_allocation(sizes, size, 'proportional') - quota) < 1).all()


def test_allocation_rejects_bad_input():
  with pytest.raises(ValueError, match='mode'):
    cluster_allocation(np.array([3, 3]), 2, 'uniform')
  with pytest.raises(ValueError, match='non-negative'):
    cluster_allocation(np.array([3, -1]), 2, 'equal')
  with pytest.raises(ValueError, match='size'):
    cluster_allocation(np.array([3, 3]), -1, 'equal')


@pytest.mark.parametrize('mode, expected', [('equal', [2, 6, 5]), ('proportional', [1, 6, 6])])
def test_sample_clusters_draws_each_share_from_its_cluster(mode, expected):
  ids = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [2, 10, 10]))
  chosen = sample_clusters(ids, 13, mode, np.random.default_rng(1))
  assert chosen.dtype == np.int64
  assert np.all(np.diff(chosen) > 0)  # sorted, distinct
  np.testing.assert_array_equal(np.bincount(ids[chosen], minlength=3), expected)
  again = sample_clusters(ids, 13, mode, np.random.default_rng(1))
  np.testing.assert_array_equal(chosen, again)
  if mode == 'equal':  # the small cluster gives both its members
    assert set(np.flatnonzero(ids == 0)) <= set(chosen)


# ------------------------------------------------------------- per-class lowest scores


def test_per_class_lowest_known_answers():
  candidates = np.arange(100, 110)
  predictions = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
  scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.4, 0.6, 0.7, 0.0])
  select = lambda k, classes=3: selection.per_class_lowest(
      scores, predictions, candidates, k, classes).tolist()
  # budget / K = 2 per class, lowest scores first.
  assert select(6) == [109, 101, 104, 103, 106, 108]
  # 7 = 2 each + 1 owed: to the class whose next in line scores lowest (class 0: 0.5).
  assert select(7) == [109, 101, 104, 103, 106, 102, 108]
  # Class 2 has only 2 candidates: 8 = 2 + 3 + 3, class 2's lack shared equally.
  assert select(8) == [109, 101, 104, 103, 106, 102, 107, 108]
  # A fourth class with no candidate: its share goes to the others (as budget 6).
  assert select(6, classes=4) == select(6)
  assert sorted(select(20)) == candidates.tolist()
  assert select(0) == []


def test_per_class_lowest_is_balanced_and_distinct_on_random_sets():
  rng = np.random.default_rng(3)
  for trial in range(20):
    n, k, budget = rng.integers(1, 60), rng.integers(1, 6), rng.integers(0, 70)
    predictions = rng.integers(0, k, n)
    scores = rng.normal(size=n)
    got = selection.per_class_lowest(scores, predictions, np.arange(n), budget, k)
    assert got.size == min(budget, n) == np.unique(got).size
    taken = np.bincount(predictions[got], minlength=k)
    available = np.bincount(predictions, minlength=k)
    # Equal shares: a class short of the largest share gave all it had.
    assert all(t == a or t >= taken.max() - 1 for t, a in zip(taken, available)), trial
    for c in range(k):  # within a class, the lowest scores
      chosen = np.isin(np.arange(n), got) & (predictions == c)
      if chosen.any() and (~chosen & (predictions == c)).any():
        assert scores[chosen].max() <= scores[~chosen & (predictions == c)].min()


# ---------------------------------------------------------------- MAL's selection rule


def test_ranks_are_stable_and_in_both_directions():
  np.testing.assert_array_equal(mal_selection.ranks([0.3, 0.1, 0.3, 0.2], descending=False),
                                [2, 0, 3, 1])
  np.testing.assert_array_equal(mal_selection.ranks([0.3, 0.1, 0.3, 0.2], descending=True),
                                [0, 3, 1, 2])


def test_both_conditions_known_answer():
  # rank by D (low first):      0:0  1:1  3:2  4:3  2:4
  # rank by entropy (high first): 2:0  1:1  3:2  0:3  4:4
  # worse of the two ranks:      0:3  1:1  2:4  3:2  4:4
  d = np.array([0.1, 0.2, 0.9, 0.3, 0.8])
  h = np.array([0.5, 2.0, 3.0, 1.9, 0.1])
  candidates = np.array([10, 11, 12, 13, 14])
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 2), [11, 13])
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 3),
                                [11, 13, 10])
  # Candidates 12 and 14 tie on the worse rank (4); 12 has the smaller rank sum (4 < 7).
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 5),
                                [11, 13, 10, 12, 14])


@pytest.mark.parametrize('seed', range(5))
def test_both_conditions_keeps_every_sample_in_both_top_b_lists(seed):
  rng = np.random.default_rng(seed)
  n, b = 200, 20
  d, h = rng.random(n), rng.random(n) + 0.5 * rng.random(n)
  query = set(mal_selection.both_conditions(d, h, np.arange(n), b).tolist())
  shared = set(np.argsort(d)[:b].tolist()) & set(np.argsort(-h)[:b].tolist())
  assert len(query) == b and shared <= query
  # Every selected sample is in the top m of both lists, for the smallest such m.
  worse = np.maximum(mal_selection.ranks(d, False), mal_selection.ranks(h, True))
  m = np.sort(worse)[b - 1]
  assert all(worse[i] <= m for i in query)


def test_both_conditions_rejects_nan_and_mismatched_scores():
  with pytest.raises(ValueError, match='NaN'):
    mal_selection.both_conditions(np.array([np.nan, 0.0]), np.zeros(2), np.arange(2), 1)
  with pytest.raises(ValueError, match='one entry per candidate'):
    mal_selection.both_conditions(np.zeros(3), np.zeros(2), np.arange(3), 1)


# ------------------------------------------------------------------- stochastic_top_k


def _first_pick_frequencies(scores, mode, beta, draws=4000):
  picks = [selection.stochastic_top_k(scores, np.arange(scores.size), 1,
                                      np.random.default_rng(seed), mode=mode, beta=beta)[0]
           for seed in range(draws)]
  return np.bincount(picks, minlength=scores.size) / draws


@pytest.mark.parametrize('mode, beta', [('power', 1.0), ('power', 2.0), ('softmax', 1.0),
                                        ('softmax', 3.0), ('softrank', 1.0)])
def test_stochastic_top_k_draws_from_kirsch_et_al_s_distributions(mode, beta):
  scores = np.array([0.5, 2.0, 1.0, 0.25])
  if mode == 'power':
    p = scores ** beta
  elif mode == 'softmax':
    p = np.exp(beta * scores)
  else:  # ranks by descending score: 0.5 -> 3, 2.0 -> 1, 1.0 -> 2, 0.25 -> 4
    p = np.array([3.0, 1.0, 2.0, 4.0]) ** -beta
  p = p / p.sum()
  frequency = _first_pick_frequencies(scores, mode, beta)
  sigma = np.sqrt(p * (1 - p) / 4000)
  assert (np.abs(frequency - p) < 4 * sigma + 1e-9).all(), (frequency, p)


def test_stochastic_top_k_samples_without_replacement_and_never_draws_a_zero_power_score():
  scores = np.array([0.0, 1.0, 0.0, 2.0, 3.0])
  candidates = np.array([10, 11, 12, 13, 14])
  for seed in range(50):
    got = selection.stochastic_top_k(scores, candidates, 3, np.random.default_rng(seed))
    assert got.dtype == np.int64 and sorted(got.tolist()) == [11, 13, 14]
  # Asked for more than the positive scores: the zeros come last, by position.
  got = selection.stochastic_top_k(scores, candidates, 5, np.random.default_rng(0))
  assert got[3:].tolist() == [10, 12]
  np.testing.assert_array_equal(
      selection.stochastic_top_k(scores, candidates, 2, np.random.default_rng(7), mode='softrank'),
      selection.stochastic_top_k(scores, candidates, 2, np.random.default_rng(7), mode='softrank'))


def test_stochastic_top_k_rejects_bad_input():
  rng_ = np.random.default_rng(0)
  with pytest.raises(ValueError, match='non-negative scores'):
    selection.stochastic_top_k(np.array([-0.1, 1.0]), np.arange(2), 1, rng_)
  with pytest.raises(ValueError, match='NaN'):
    selection.stochastic_top_k(np.array([np.nan, 1.0]), np.arange(2), 1, rng_, mode='softmax')
  with pytest.raises(ValueError, match='mode must be one of'):
    selection.stochastic_top_k(np.ones(2), np.arange(2), 1, rng_, mode='boltzmann')
  with pytest.raises(ValueError, match='beta=-1'):
    selection.stochastic_top_k(np.ones(2), np.arange(2), 1, rng_, beta=-1.0)
  with pytest.raises(ValueError, match='candidates'):
    selection.stochastic_top_k(np.ones(3), np.arange(2), 1, rng_)
