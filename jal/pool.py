"""The labeled and unlabeled pools: NumPy index arrays owned by the host loop.

The pool is the only state the experiment loop carries from round to round
(besides the results so far): which train indices are labeled, in the order
they were labeled, and the label the oracle returned for each.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jal.errors import JalError


def resolve_count(value: float, num_train: int, what: str) -> int:
  """Turns a count, or a fraction of the train split when below 1, into a count.

  Args:
    value: a positive integer count, or a fraction in ``(0, 1)``.
    num_train: the size of the train split.
    what: the config key, for the error message (e.g. ``'config.budget'``).

  Returns:
    The count, at least 1.

  Raises:
    JalError: if ``value`` is not positive, is a non-integer above 1, or
      exceeds ``num_train``.
  """
  not_finite = isinstance(value, float) and not math.isfinite(value)
  if value is None or not_finite or value <= 0:
    shown = f'{value:g}' if isinstance(value, (int, float)) else repr(value)
    raise JalError(f'{what}={shown} must be positive and finite: a count, or a fraction of the '
                   f'{num_train} train examples when below 1')
  if value < 1:
    return max(1, int(round(value * num_train)))
  if value != int(value):
    raise JalError(f'{what}={value} must be an integer count (or a fraction below 1)')
  count = int(value)
  if count > num_train:
    raise JalError(f'{what}={count} is larger than the {num_train} train examples; lower it')
  return count


@dataclasses.dataclass(frozen=True)
class Pool:
  """Labeled / unlabeled split of the train set.

  Attributes:
    num_train: size of the train split ``N``.
    labeled: int64 with shape ``[L]``: train indices in the order they were
      labeled (the initial pool first, then each query).
    oracle_labels: the label the oracle returned for each entry of
      ``labeled`` (possibly wrong, under label noise): int32 ``[L]`` classes,
      or uint8 ``[L, H, W]`` masks for segmentation (`jal.task.SegmentationTask`).
    excluded: int64 with shape ``[E]``: train indices taken out of the pool
      unlabeled, in the order they were taken out (images a person skipped
      as unusable, `jal.human`); neither labeled nor ever queried again.
  """

  num_train: int
  labeled: np.ndarray
  oracle_labels: np.ndarray
  excluded: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

  @property
  def num_labeled(self) -> int:
    return int(self.labeled.shape[0])

  @property
  def unlabeled(self) -> np.ndarray:
    """int64 with shape ``[N - L - E]``: the unlabeled train indices, sorted."""
    mask = np.ones(self.num_train, bool)
    mask[self.labeled] = False
    mask[self.excluded] = False
    return np.flatnonzero(mask)

  def label_array(self) -> np.ndarray:
    """int32 with shape ``[N]``: oracle labels, -1 where unlabeled."""
    out = np.full(self.num_train, -1, np.int32)
    out[self.labeled] = self.oracle_labels
    return out

  def add(self, query: np.ndarray, labels: np.ndarray) -> 'Pool':
    """Returns the pool with ``query`` labeled as ``labels`` (appended in order).

    ``labels``: int ``[n]`` classes, or uint8 ``[n, H, W]`` masks like the pool's.
    """
    query = np.asarray(query, np.int64)
    labels = np.asarray(labels)
    labels = labels.astype(np.int32 if labels.ndim <= 1 else np.uint8, copy=False)
    if query.shape != labels.shape[:1]:
      raise ValueError(f'{query.shape[0]} queried indices but {labels.shape[0]} labels')
    if self.oracle_labels.size == 0 and self.oracle_labels.shape[1:] != labels.shape[1:]:
      old = self.oracle_labels.reshape(0, *labels.shape[1:]).astype(labels.dtype)
    else:
      old = self.oracle_labels
    pool = Pool(self.num_train, np.concatenate([self.labeled, query]),
                np.concatenate([old, labels]), self.excluded)
    pool.check()
    return pool

  def exclude(self, indices: np.ndarray) -> 'Pool':
    """Returns the pool with unlabeled ``indices`` taken out of it (appended in order)."""
    pool = Pool(self.num_train, self.labeled, self.oracle_labels,
                np.concatenate([self.excluded, np.asarray(indices, np.int64)]))
    pool.check()
    return pool

  def check(self) -> None:
    """Checks the invariants: indices in range, none labeled or excluded twice,
    none both labeled and excluded.

    Labeled, excluded and unlabeled are then disjoint and together the whole
    train split by construction (``unlabeled`` is the complement of the others).

    Raises:
      AssertionError: naming the broken invariant.
    """
    assert self.labeled.ndim == 1 and self.labeled.shape == self.oracle_labels.shape[:1], (
        'labeled indices and oracle labels differ in shape')
    if self.labeled.size:
      assert self.labeled.min() >= 0 and self.labeled.max() < self.num_train, (
          'a labeled index is outside the train split')
    assert np.unique(self.labeled).size == self.labeled.size, 'an index was labeled twice'
    assert self.excluded.ndim == 1, 'excluded indices are not a 1-D array'
    if self.excluded.size:
      assert self.excluded.min() >= 0 and self.excluded.max() < self.num_train, (
          'an excluded index is outside the train split')
      assert np.unique(self.excluded).size == self.excluded.size, 'an index was excluded twice'
      assert not np.isin(self.excluded, self.labeled).any(), 'an index is labeled and excluded'
    unlabeled = self.unlabeled
    assert unlabeled.size + self.labeled.size + self.excluded.size == self.num_train, (
        'labeled, excluded and unlabeled do not cover the train split')


def check_query(pool: Pool, query: np.ndarray, budget: int) -> None:
  """Checks a strategy's query against the pool before the oracle sees it.

  Raises:
    AssertionError: if the query has duplicates, touches a labeled index, or
      does not have ``min(budget, number unlabeled)`` entries.
  """
  query = np.asarray(query)
  assert query.ndim == 1, f'a query is a 1-D index array, got shape {query.shape}'
  assert np.unique(query).size == query.size, 'the query has a duplicate index'
  expected = min(budget, pool.unlabeled.size)
  assert query.size == expected, f'the query has {query.size} indices, expected {expected}'
  assert not np.isin(query, pool.labeled).any(), 'the query holds an already-labeled index'
  assert not np.isin(query, pool.excluded).any(), 'the query holds an excluded index'
  assert query.size == 0 or (query.min() >= 0 and query.max() < pool.num_train), (
      'the query holds an index outside the train split')
