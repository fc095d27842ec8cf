"""Tests of jal.pool: resolve_count (a fraction or a count of the train set), the labeled Pool (a
partition kept in labeling order with its labels, and what it refuses) and check_query's checks of
a strategy's query, by properties drawn with hypothesis and by examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jal.errors import JalError
from jal.pool import Pool, check_query, resolve_count

_SETTINGS = settings(max_examples=50, deadline=None)


def _empty_pool(n: int) -> Pool:
  return Pool(n, np.zeros(0, np.int64), np.zeros(0, np.int32))


# --------------------------------------------------------------------------- resolve_count


@_SETTINGS
@given(num_train=st.integers(1, 100_000),
       fraction=st.floats(min_value=1e-9, max_value=1.0, exclude_max=True))
def test_resolve_count_fraction(num_train, fraction):
  count = resolve_count(fraction, num_train, 'config.budget')
  assert isinstance(count, int)
  assert 1 <= count <= num_train
  # The nearest count to fraction * N, or 1 when that rounds to 0.
  if fraction * num_train >= 1:
    assert abs(count - fraction * num_train) <= 0.5 + 1e-9
  else:
    assert count == 1


def test_resolve_count_fraction_examples():
  assert resolve_count(0.1, 50_000, 'b') == 5000
  assert resolve_count(0.25, 10, 'b') == 2  # 2.5: rounds to the even count
  assert resolve_count(0.35, 10, 'b') == 4  # 3.5000000000000004
  assert resolve_count(1e-6, 10, 'b') == 1  # never 0
  assert resolve_count(0.999, 10, 'b') == 10


@_SETTINGS
@given(data=st.data())
def test_resolve_count_count(data):
  num_train = data.draw(st.integers(1, 10_000))
  count = data.draw(st.integers(1, num_train))
  assert resolve_count(count, num_train, 'x') == count
  as_float = resolve_count(float(count), num_train, 'x')
  assert as_float == count and isinstance(as_float, int)


@_SETTINGS
@given(num_train=st.integers(1, 1000),
       value=st.one_of(st.integers(max_value=0),
                       st.floats(max_value=0.0, allow_nan=False, allow_infinity=False)))
def test_resolve_count_nonpositive_raises(num_train, value):
  with pytest.raises(JalError, match='config.initial_pool.size'):
    resolve_count(value, num_train, 'config.initial_pool.size')


def test_resolve_count_none_raises():
  with pytest.raises(JalError):
    resolve_count(None, 10, 'x')


@_SETTINGS
@given(num_train=st.integers(2, 1000),
       value=st.floats(min_value=1.0, max_value=1e6, exclude_min=True, allow_nan=False))
def test_resolve_count_non_integer_above_one_raises(num_train, value):
  if value == int(value):
    value += 0.5
  with pytest.raises(JalError, match='integer'):
    resolve_count(value, num_train, 'config.budget')


@_SETTINGS
@given(num_train=st.integers(1, 1000), excess=st.integers(1, 1000))
def test_resolve_count_above_num_train_raises(num_train, excess):
  with pytest.raises(JalError, match='larger'):
    resolve_count(num_train + excess, num_train, 'config.budget')


@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_resolve_count_nan_and_inf_raise_jal_error(value):
  with pytest.raises(JalError):
    resolve_count(value, 10, 'config.budget')


def test_resolve_count_errors_are_value_errors():
  # JalError is a ValueError, so callers catching ValueError see it too.
  assert issubclass(JalError, ValueError)


# --------------------------------------------------------------------------- Pool


@st.composite
def _labeling_plan(draw):
  """N, a labeling order of a subset of range(N), its labels, and cut points into rounds."""
  num_train = draw(st.integers(1, 60))
  order = draw(st.permutations(range(num_train)))
  num_labeled = draw(st.integers(0, num_train))
  order = list(order[:num_labeled])
  labels = draw(st.lists(st.integers(0, 9), min_size=num_labeled, max_size=num_labeled))
  cuts = sorted(draw(st.lists(st.integers(0, num_labeled), max_size=4)))
  return num_train, order, labels, cuts


@_SETTINGS
@given(plan=_labeling_plan())
def test_pool_add_keeps_partition_and_labels(plan):
  num_train, order, labels, cuts = plan
  pool = _empty_pool(num_train)
  bounds = [0, *cuts, len(order)]
  for start, stop in zip(bounds[:-1], bounds[1:]):
    pool = pool.add(np.array(order[start:stop], np.int64), np.array(labels[start:stop], np.int32))
    labeled, unlabeled = pool.labeled, pool.unlabeled
    assert set(labeled.tolist()).isdisjoint(unlabeled.tolist())
    assert sorted(labeled.tolist() + unlabeled.tolist()) == list(range(num_train))
    assert np.all(np.diff(unlabeled) > 0)  # sorted
    assert pool.num_labeled == stop
  # Order of labeling kept, and the labels aligned with it.
  assert pool.labeled.tolist() == order
  assert pool.oracle_labels.tolist() == labels
  assert pool.labeled.dtype == np.int64 and pool.oracle_labels.dtype == np.int32
  expected = np.full(num_train, -1, np.int32)
  for index, label in zip(order, labels):
    expected[index] = label
  label_array = pool.label_array()
  assert label_array.dtype == np.int32 and label_array.shape == (num_train,)
  np.testing.assert_array_equal(label_array, expected)


def test_pool_add_does_not_mutate():
  pool = _empty_pool(5).add(np.array([3]), np.array([1]))
  bigger = pool.add(np.array([0, 4]), np.array([2, 2]))
  assert pool.labeled.tolist() == [3]
  assert bigger.labeled.tolist() == [3, 0, 4]


@_SETTINGS
@given(data=st.data())
def test_pool_add_twice_raises(data):
  num_train = data.draw(st.integers(1, 40))
  first = data.draw(st.lists(st.integers(0, num_train - 1), min_size=1, unique=True))
  again = data.draw(st.sampled_from(first))
  pool = _empty_pool(num_train).add(np.array(first), np.zeros(len(first)))
  with pytest.raises(AssertionError, match='twice'):
    pool.add(np.array([again]), np.array([0]))


def test_pool_add_duplicate_within_one_query_raises():
  with pytest.raises(AssertionError, match='twice'):
    _empty_pool(5).add(np.array([1, 1]), np.array([0, 0]))


def test_pool_add_out_of_range_raises():
  with pytest.raises(AssertionError, match='outside'):
    _empty_pool(5).add(np.array([5]), np.array([0]))
  with pytest.raises(AssertionError, match='outside'):
    _empty_pool(5).add(np.array([-1]), np.array([0]))


def test_pool_add_shape_mismatch_raises():
  with pytest.raises(ValueError):
    _empty_pool(5).add(np.array([1, 2]), np.array([0]))


# --------------------------------------------------------------------------- check_query


@st.composite
def _pool_and_budget(draw):
  num_train = draw(st.integers(2, 50))
  order = draw(st.permutations(range(num_train)))
  num_labeled = draw(st.integers(0, num_train - 1))
  pool = _empty_pool(num_train).add(np.array(order[:num_labeled], np.int64),
                                    np.zeros(num_labeled, np.int32))
  budget = draw(st.integers(1, num_train + 5))
  return pool, budget


@_SETTINGS
@given(setup=_pool_and_budget(), data=st.data())
def test_check_query_accepts_valid(setup, data):
  pool, budget = setup
  unlabeled = pool.unlabeled.tolist()
  size = min(budget, len(unlabeled))
  query = data.draw(st.permutations(unlabeled))[:size]
  check_query(pool, np.array(query, np.int64), budget)


@_SETTINGS
@given(setup=_pool_and_budget(), data=st.data())
def test_check_query_end_of_pool(setup, data):
  # Fewer unlabeled than the budget: the query is everything left.
  pool, _ = setup
  unlabeled = pool.unlabeled
  budget = unlabeled.size + data.draw(st.integers(1, 10))
  check_query(pool, unlabeled[::-1].copy(), budget)
  with pytest.raises(AssertionError, match='expected'):
    check_query(pool, unlabeled[:-1], budget)


@_SETTINGS
@given(setup=_pool_and_budget(), data=st.data())
def test_check_query_rejects_duplicates(setup, data):
  pool, budget = setup
  unlabeled = pool.unlabeled.tolist()
  size = min(budget, len(unlabeled))
  if size < 2:
    size = 2  # a duplicate needs two entries; the size check comes after
  query = data.draw(st.permutations(unlabeled))[:size - 1]
  if not query:
    query = [unlabeled[0]]
  query = query + [query[0]] * (size - len(query))
  with pytest.raises(AssertionError, match='duplicate'):
    check_query(pool, np.array(query, np.int64), budget)


@_SETTINGS
@given(setup=_pool_and_budget(), data=st.data())
def test_check_query_rejects_labeled(setup, data):
  pool, budget = setup
  if pool.num_labeled == 0:
    pool = pool.add(pool.unlabeled[:1], np.zeros(1))
    if pool.unlabeled.size == 0:
      return
  unlabeled = pool.unlabeled.tolist()
  size = min(budget, len(unlabeled))
  query = data.draw(st.permutations(unlabeled))[:size]
  query[data.draw(st.integers(0, size - 1))] = data.draw(st.sampled_from(pool.labeled.tolist()))
  with pytest.raises(AssertionError, match='already-labeled'):
    check_query(pool, np.array(query, np.int64), budget)


@_SETTINGS
@given(setup=_pool_and_budget(), data=st.data())
def test_check_query_rejects_wrong_size(setup, data):
  pool, budget = setup
  unlabeled = pool.unlabeled.tolist()
  size = min(budget, len(unlabeled))
  wrong = data.draw(st.integers(0, len(unlabeled)).filter(lambda s: s != size))
  query = data.draw(st.permutations(unlabeled))[:wrong]
  with pytest.raises(AssertionError, match='expected'):
    check_query(pool, np.array(query, np.int64), budget)


def test_check_query_rejects_out_of_range_and_2d():
  pool = _empty_pool(5)
  with pytest.raises(AssertionError, match='outside'):
    check_query(pool, np.array([0, 5]), 2)
  with pytest.raises(AssertionError, match='1-D'):
    check_query(pool, np.array([[0, 1]]), 2)
