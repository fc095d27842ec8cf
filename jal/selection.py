"""Selection rules: from scores over candidates to a query of indices."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, candidates: np.ndarray, k: int,
          tie_break: np.ndarray | None = None) -> np.ndarray:
  """The ``k`` candidates with the highest scores.

  Ties go to the highest ``tie_break`` score if given, then to the candidate
  listed first, so the result is deterministic.

  Args:
    scores: float with shape ``[n]``, aligned with ``candidates``.
    candidates: int with shape ``[n]``: pool indices.
    k: how many to select (clipped to ``n``).
    tie_break: optional float ``[n]``, the secondary key.

  Returns:
    int64 with shape ``[min(k, n)]``, best first.

  Raises:
    ValueError: if shapes disagree or a score is NaN.
  """
  keys = [np.asarray(scores)] + ([] if tie_break is None else [np.asarray(tie_break)])
  for key in keys:
    if key.shape != np.shape(candidates):
      raise ValueError(f'{key.shape} scores for {np.shape(candidates)} candidates')
    if np.isnan(key).any():
      raise ValueError('a score is NaN')
  # np.lexsort sorts by the last key first, and is stable.
  order = np.lexsort([np.arange(len(keys[0]))] + [-key for key in reversed(keys)])[:k]
  return np.asarray(candidates, np.int64)[order]


def water_level(counts: np.ndarray, budget: int) -> int:
  """The largest level ``L`` with ``sum_k min(counts_k, L) <= budget`` (water-filling).

  Equal shares of ``budget`` across groups of ``counts`` members: every group
  gives ``min(counts_k, L)``, so a group too small for its share gives all it
  has and the others share the rest; fewer than ``#{k: counts_k > L}`` picks
  are then left (SCAL's per-class query, paper 001's equal cluster allocation).

  Args:
    counts: int ``[K]``, ``>= 0``.
    budget: ``>= 0``.

  Returns:
    ``L`` in ``[0, max(counts)]``.
  """
  counts = np.asarray(counts, np.int64)
  low, high = 0, int(counts.max(initial=0))  # sum(min(n, 0)) = 0 <= budget always
  while low < high:
    mid = (low + high + 1) // 2
    if int(np.minimum(counts, mid).sum()) <= budget:
      low = mid
    else:
      high = mid - 1
  return low
