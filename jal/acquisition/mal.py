"""MAL's sampling rule (Ebrahimi et al., "Minimax Active Learning", paper 003, Algorithm 2).

Algorithm 2 selects the samples with "min_b D(F(x))" and "max_b C(F(x))":
those the discriminator is surest are unlabeled (lowest D) and those whose
entropy under the cosine classifier is highest, and Sec. 3.3 says "we take the
top b samples that meet both conditions". Two top-b lists rarely share b
samples, so the paper leaves open how the two are combined. jal reads "meet
both conditions" literally and widens the lists until they do: a sample is in
the top ``m`` of both lists exactly when the worse of its two ranks is below
``m``, so the query is the ``b`` samples with the smallest worse rank (the
smallest ``m`` whose two top-``m`` lists share ``b`` samples), ties broken by
the sum of the two ranks and then by position. When the two top-``b`` lists
share ``s`` samples, those ``s`` are always selected.
"""

from __future__ import annotations

import numpy as np

from jal import selection


def ranks(scores: np.ndarray, descending: bool) -> np.ndarray:
  """int64 ``[n]``: each score's 0-based rank, ties by position (stable).

  Args:
    scores: float ``[n]``.
    descending: rank 0 is the highest score (True) or the lowest (False).
  """
  scores = np.asarray(scores, np.float64)
  order = np.argsort(-scores if descending else scores, kind='stable')
  out = np.empty(scores.size, np.int64)
  out[order] = np.arange(scores.size)
  return out


def both_conditions(discriminator: np.ndarray, entropy: np.ndarray, candidates: np.ndarray,
                    k: int) -> np.ndarray:
  """The ``k`` candidates that best meet both conditions of Algorithm 2.

  Args:
    discriminator: float ``[n]``, D's output (or logit) on each candidate;
      low means "unlabeled".
    entropy: float ``[n]``, the entropy of C's prediction (nats).
    candidates: int ``[n]``, pool indices.
    k: the budget ``b`` (clipped to ``n``).

  Returns:
    int64 ``[min(k, n)]``: pool indices, best first (smallest worse rank).

  Raises:
    ValueError: shapes disagree or a score is NaN.
  """
  discriminator, entropy = np.asarray(discriminator), np.asarray(entropy)
  if discriminator.shape != entropy.shape:
    raise ValueError(f'discriminator {discriminator.shape} and entropy {entropy.shape} scores '
                     'must have one entry per candidate')
  if np.isnan(discriminator).any() or np.isnan(entropy).any():
    raise ValueError('a score is NaN')
  rank_d = ranks(discriminator, descending=False)
  rank_h = ranks(entropy, descending=True)
  worse = np.maximum(rank_d, rank_h)
  return selection.top_k(-worse.astype(np.float64), candidates, k,
                         tie_break=-(rank_d + rank_h).astype(np.float64))
