"""Selection rules: from scores to a query of indices, every rule in one place.

Scores come from `jal.acquisition` (or a self-supervised loss); these rules
turn them into the indices a round queries or an initial pool holds. All
are NumPy on the host, deterministic (ties by a stated secondary key, then
by position) and validate their input.

- `top_k` (and its strict positional form `highest_scores`): the highest scores.
- `stochastic_top_k`: a sample that favours high scores (power, softmax or
  soft-rank acquisition).
- `per_class_lowest`: SCAL's equal share per predicted class (water-filling,
  `water_level`).
- `both_conditions`: MAL's two-list rule (`ranks`).
- `binned`, `cluster_allocation`, `sample_clusters`: the initial pools of
  Chandra et al. (2021).
- `even_split`: a budget in near-equal shares (PAL's sub-queries, the bins).
"""

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


SAMPLING = ('power', 'softmax', 'softrank')


def stochastic_top_k(scores: np.ndarray, candidates: np.ndarray, k: int,
                     rng: np.random.Generator, *, mode: str = 'power',
                     beta: float = 1.0) -> np.ndarray:
  """``k`` candidates drawn without replacement, high scores more likely.

  Stochastic batch acquisition (Kirsch et al., "Stochastic Batch Acquisition:
  A Simple Baseline for Deep Active Learning", TMLR 2023, Sec. 3): instead of
  the top ``k`` of a single-point score, draw the batch from

  - ``'power'``: ``p_i ∝ s_i^beta`` (scores ``>= 0``; a zero score is never
    drawn while any positive one is left);
  - ``'softmax'``: ``p_i ∝ exp(beta s_i)``;
  - ``'softrank'``: ``p_i ∝ r_i^(-beta)``, ``r_i`` the 1-based rank of
    ``s_i`` in descending order (ties by position).

  The ``k`` draws are the Gumbel-top-k trick: the ``k`` largest ``log p_i +
  g_i`` with ``g_i`` i.i.d. standard Gumbel, which is ``k`` successive draws
  without replacement, each from ``p`` renormalised over what is left
  (Plackett-Luce). ``beta -> inf`` approaches `top_k`; ``beta = 0`` is
  uniform sampling.

  Args:
    scores: float ``[n]``, aligned with ``candidates``; no NaN.
    candidates: int ``[n]``: pool indices.
    k: how many (clipped to ``n``).
    rng: the generator of the Gumbel noise (one draw of ``n``).
    mode: ``'power'``, ``'softmax'`` or ``'softrank'``.
    beta: the coldness ``beta >= 0`` (Kirsch et al. use 1).

  Returns:
    int64 ``[min(k, n)]`` distinct candidates, in the order drawn.

  Raises:
    ValueError: shapes disagree, a NaN score, a negative score for
      ``'power'``, a negative ``beta`` or an unknown mode.
  """
  scores = np.asarray(scores, np.float64)
  if scores.shape != np.shape(candidates):
    raise ValueError(f'{scores.shape} scores for {np.shape(candidates)} candidates')
  if np.isnan(scores).any():
    raise ValueError('a score is NaN')
  if not beta >= 0:
    raise ValueError(f'beta={beta} must be non-negative')
  if mode not in SAMPLING:
    raise ValueError(f"mode must be one of {', '.join(SAMPLING)}, got {mode!r}")
  if mode == 'power' and (scores < 0).any():
    raise ValueError('power sampling needs non-negative scores')
  if beta == 0:
    log_p = np.zeros_like(scores)
  elif mode == 'power':
    with np.errstate(divide='ignore'):
      log_p = beta * np.log(scores)  # log 0 = -inf: never drawn before a positive score
  elif mode == 'softmax':
    log_p = beta * scores
  else:
    rank = np.empty(scores.size)
    rank[np.lexsort((np.arange(scores.size), -scores))] = np.arange(1, scores.size + 1)
    log_p = -beta * np.log(rank)
  perturbed = log_p + rng.gumbel(size=scores.size)
  return top_k(perturbed, candidates, k)


def water_level(counts: np.ndarray, budget: int) -> int:
  """The largest level ``L`` with ``sum_k min(counts_k, L) <= budget`` (water-filling).

  Equal shares of ``budget`` across groups of ``counts`` members: every group
  gives ``min(counts_k, L)``, so a group too small for its share gives all it
  has and the others share the rest; fewer than ``#{k: counts_k > L}`` picks
  are then left (SCAL's per-class query; Chandra et al.'s equal cluster allocation).

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


def even_split(total: int, parts: int) -> list[int]:
  """``total`` in ``parts`` shares that differ by at most one, larger first.

  Args:
    total: ``>= 0``.
    parts: ``>= 1``.

  Returns:
    ``parts`` ints summing to ``total``: ``total // parts``, plus one for the
    first ``total % parts``.
  """
  return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _scores_1d(scores: np.ndarray) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 1:
    raise ValueError(f'scores must be 1-D, got shape {scores.shape}')
  if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
    raise ValueError('a score is NaN')
  return scores


def _count(size: int, limit: int, what: str) -> int:
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
    raise ValueError(f'{what} must be an integer, got {size!r}')
  if not 0 <= size <= limit:
    raise ValueError(f'{what}={size} must be in [0, {limit}]')
  return int(size)




def highest_scores(scores: np.ndarray, size: int) -> np.ndarray:
  """The positions of the ``size`` highest scores: `top_k` over positions, with strict checks.

  The initial pool of the highest self-supervised losses (Chandra et al.
  2021, Eq. 1: ``argmax_i L(x_i)``).

  Args:
    scores: float or int ``[n]``, no NaN.
    size: how many, ``0 <= size <= n``.

  Returns:
    int64 ``[size]`` positions in ``scores``, highest score first; equal
    scores go to the lower position first.

  Raises:
    ValueError: ``scores`` is not 1-D or holds a NaN, or ``size`` is out of range.
  """
  scores = _scores_1d(scores)
  size = _count(size, scores.size, 'size')
  return top_k(scores, np.arange(scores.size), size)


def binned(scores: np.ndarray, size: int, num_bins: int) -> np.ndarray:
  """Hard and easy examples from ``n`` bins of the score order (Chandra et al. 2021, Sec. 4.1).

  After Roy et al. (BMVC 2018): the examples sorted by score, highest
  (hardest) first, are split into ``n = num_bins`` bins of equal size
  (``np.array_split``: the first ``len % n`` bins hold one more); the ``size
  / n`` highest-scored of each of the top ``n - 1`` bins and the ``size / n``
  lowest-scored of the last bin are taken. When ``n`` does not divide
  ``size``, the first ``size % n`` bins (the hardest) take one more
  (`even_split`). No bin is ever smaller than its share when ``size <= len``:
  the bins and the shares split ``len`` and ``size`` by the same rule, so
  nothing needs redistributing. ``n = 1`` takes the ``size`` lowest scores.

  Equal scores keep index order in the sort, so the top bins take the lower
  index first and the last bin (read from its end) the higher one.

  Args:
    scores: float or int ``[N]``, no NaN.
    size: how many, ``0 <= size <= N``.
    num_bins: ``n >= 1`` (the paper: 2, 5, 10).

  Returns:
    int64 ``[size]`` positions in ``scores``, bin by bin: each top bin's picks
    hardest first, then the last bin's, easiest first.

  Raises:
    ValueError: ``scores`` is not 1-D or holds a NaN, ``size`` is out of
      range, or ``num_bins`` is not a positive integer.
  """
  scores = _scores_1d(scores)
  size = _count(size, scores.size, 'size')
  if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
    raise ValueError(f'num_bins must be a positive integer, got {num_bins!r}')
  bins = np.array_split(highest_scores(scores, scores.size), num_bins)
  shares = even_split(size, num_bins)
  picks = [b[:share] for b, share in zip(bins[:-1], shares[:-1])]
  last, share = bins[-1], shares[-1]
  picks.append(last[last.size - share:][::-1])
  return np.concatenate(picks).astype(np.int64)


def cluster_allocation(cluster_sizes: np.ndarray, size: int, mode: str) -> np.ndarray:
  """How many examples each cluster gives (Chandra et al. 2021, Sec. 3.2).

  ``'equal'``: ``B / K`` per cluster. A cluster with fewer members gives all
  it has and the others share its deficit (water-filling): the level ``L``
  is the largest with ``sum_k min(n_k, L) <= B``, cluster ``k`` gives
  ``min(n_k, L)``, and the ``r < #{k : n_k > L}`` picks left over go one
  each to the largest clusters with members left (equal sizes: lower index
  first). With no small cluster this is ``B // K`` each, and one more for
  ``B % K`` clusters.

  ``'proportional'``: ``|C_j| B / N_U`` (``N_U`` = the total), rounded by
  largest remainders: the floors, then one more to the clusters with the
  largest fractional parts (ties: lower index). Computed in integers, so
  exact; a cluster never gives more than it holds.

  Args:
    cluster_sizes: int ``[K]`` (``K >= 1``), the members of each cluster, ``>= 0``.
    size: the budget ``B >= 0``; more than the total takes everything.
    mode: ``'equal'`` or ``'proportional'``.

  Returns:
    int64 ``[K]`` with ``0 <= a_k <= n_k``, summing to ``min(size, total)``.

  Raises:
    ValueError: a bad shape, size, count or mode.
  """
  sizes = np.asarray(cluster_sizes)
  if sizes.ndim != 1 or sizes.size == 0:
    raise ValueError(f'cluster_sizes must be 1-D and non-empty, got shape {sizes.shape}')
  if not np.issubdtype(sizes.dtype, np.integer):
    if not np.all(np.equal(np.mod(sizes, 1), 0)):
      raise ValueError(f'cluster_sizes must be integers, got {sizes}')
  sizes = sizes.astype(np.int64)
  if (sizes < 0).any():
    raise ValueError(f'cluster_sizes must be non-negative, got {sizes}')
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
    raise ValueError(f'size must be a non-negative integer, got {size!r}')
  total = int(sizes.sum())
  budget = min(int(size), total)
  by_index = np.arange(sizes.size)
  if mode == 'equal':
    allocation = np.minimum(sizes, water_level(sizes, budget))
    left = budget - int(allocation.sum())
    # Largest clusters first, ties to the lower index; only n_k > L have room.
    order = np.lexsort((by_index, -sizes))
    allocation[order[:left]] += 1
  elif mode == 'proportional':
    if total == 0:
      return np.zeros(sizes.size, np.int64)
    allocation, remainder = np.divmod(sizes * budget, total)
    left = budget - int(allocation.sum())
    order = np.lexsort((by_index, -remainder))
    allocation[order[:left]] += 1
  else:
    raise ValueError(f"mode must be 'equal' or 'proportional', got {mode!r}")
  return allocation.astype(np.int64)


def sample_clusters(cluster_ids: np.ndarray, size: int, mode: str,
                    rng_: np.random.Generator) -> np.ndarray:
  """Draws `cluster_allocation`'s share of each cluster uniformly at random.

  Args:
    cluster_ids: int ``[N]``, the cluster of each example, ``>= 0``; ``K =
      max + 1`` clusters (an id with no member is an empty cluster).
    size: the budget ``B >= 0`` (more than ``N`` takes everything).
    mode: ``'equal'`` or ``'proportional'``.
    rng_: the NumPy generator of the draws, one ``choice`` per cluster in
      cluster order.

  Returns:
    int64 ``[min(size, N)]`` positions in ``cluster_ids``, sorted.

  Raises:
    ValueError: bad ids, size or mode.
  """
  ids = np.asarray(cluster_ids)
  if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f'cluster_ids must be a non-empty 1-D int array, got {ids.dtype} {ids.shape}')
  if (ids < 0).any():
    raise ValueError('cluster_ids must be non-negative')
  allocation = cluster_allocation(np.bincount(ids), size, mode)
  picks = [rng_.choice(np.flatnonzero(ids == k), count, replace=False)
           for k, count in enumerate(allocation) if count]
  return np.sort(np.concatenate(picks) if picks else np.zeros(0)).astype(np.int64)


def per_class_lowest(scores: np.ndarray, predictions: np.ndarray, candidates: np.ndarray,
                     budget: int, num_classes: int) -> np.ndarray:
  """SCAL's selection (Krishnan et al. 2021, App. A.4): ``budget / K`` lowest scores per class.

  Shares are equal across the ``K = num_classes`` classes, by water-filling:
  the largest level ``L`` with ``sum_k min(n_k, L) <= budget`` (``n_k`` the
  candidates predicted ``k``) takes the ``L`` lowest-scoring candidates of
  every class (all of a class with ``n_k <= L``), so a class with too few
  candidates gives what it cannot use to every other class equally. The
  ``R < K`` picks still owed then go one each to the classes whose next
  candidate in line has the lowest score. With enough candidates in every
  class this is ``budget // K`` per class plus one for ``budget % K`` classes.
  Ties go to the candidate listed first, and between classes to the lower class.

  Args:
    scores: float ``[n]``; lower is queried first (``-inf`` allowed).
    predictions: int ``[n]`` in ``[0, num_classes)``.
    candidates: int ``[n]``, pool indices.
    budget: how many to select (clipped to ``n``).
    num_classes: ``K``.

  Returns:
    int64 ``[min(budget, n)]`` distinct candidates, sorted by score
    (lowest first).

  Raises:
    ValueError: mismatched shapes, a NaN score or a prediction out of range.
  """
  scores = np.asarray(scores, np.float64)
  predictions = np.asarray(predictions)
  candidates = np.asarray(candidates, np.int64)
  if scores.shape != candidates.shape or predictions.shape != candidates.shape:
    raise ValueError(f'{scores.shape} scores and {predictions.shape} predictions for '
                     f'{candidates.shape} candidates')
  if np.isnan(scores).any():
    raise ValueError('a score is NaN')
  if predictions.size and not 0 <= predictions.min() <= predictions.max() < num_classes:
    raise ValueError(f'predictions must be in [0, {num_classes})')
  k = min(int(budget), candidates.size)
  position = np.arange(candidates.size)
  # Within each class, candidates by ascending score (ties: listed first).
  order = np.lexsort((position, scores, predictions))
  counts = np.bincount(predictions, minlength=num_classes)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.empty(candidates.size, np.int64)
  rank[order] = position - np.repeat(starts, counts)  # rank within its class
  level = water_level(counts, k)
  chosen = rank < level
  owed = k - int(chosen.sum())
  if owed:
    next_in_line = np.flatnonzero(rank == level)
    by_score = np.lexsort((predictions[next_in_line], scores[next_in_line]))
    chosen[next_in_line[by_score[:owed]]] = True
  picked = np.flatnonzero(chosen)
  return candidates[picked[np.lexsort((picked, scores[picked]))]]


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
  """The ``k`` candidates that best meet both conditions of MAL's Algorithm 2.

  MAL (Ebrahimi et al. 2020) selects the samples with "min_b D(F(x))" and
  "max_b C(F(x))": those the discriminator is surest are unlabeled (lowest
  D) and those whose entropy under the cosine classifier is highest, "the
  top b samples that meet both conditions" (Sec. 3.3). Two top-b lists
  rarely share b samples, so the paper leaves the combination open. jal
  reads "meet both conditions" literally and widens the lists until they
  do: a sample is in the top ``m`` of both lists exactly when the worse of
  its two ranks is below ``m``, so the query is the ``b`` samples with the
  smallest worse rank (the smallest ``m`` whose two top-``m`` lists share
  ``b`` samples), ties broken by the sum of the two ranks and then by
  position. When the two top-``b`` lists share ``s`` samples, those ``s``
  are always selected.

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
  return top_k(-worse.astype(np.float64), candidates, k,
                         tie_break=-(rank_d + rank_h).astype(np.float64))
