"""Selection rules: from scores over candidates to a query of indices."""

from __future__ import annotations

import numpy as np


def top_k(scores: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
  """The ``k`` candidates with the highest scores.

  Ties go to the candidate listed first, so the result is deterministic.

  Args:
    scores: float with shape ``[n]``, aligned with ``candidates``.
    candidates: int with shape ``[n]``: pool indices.
    k: how many to select (clipped to ``n``).

  Returns:
    int64 with shape ``[min(k, n)]``, best first.

  Raises:
    ValueError: if shapes disagree or a score is NaN.
  """
  scores = np.asarray(scores)
  if scores.shape != np.shape(candidates):
    raise ValueError(f'{scores.shape} scores for {np.shape(candidates)} candidates')
  if np.isnan(scores).any():
    raise ValueError('a score is NaN')
  order = np.argsort(-scores, kind='stable')[:k]
  return np.asarray(candidates, np.int64)[order]
