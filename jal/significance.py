"""Which differences between active learning strategies are real: paired tests over seeds.

In a comparison (`jal.comparison`) the strategies of one seed share that
seed's initial pool, so their learning curves are paired by seed. This
module holds what is computed on those paired curves:

- `area_under_curve`: the normalised area under a metric-vs-labels curve;
- `penalty_matrix`: the pairwise penalty matrix of Ash et al. (2020, Sec. 5
  and Fig. 4; used again by Lüth et al. 2023): ``P[i, j]`` is the fraction
  of the labeled-set sizes at which strategy i beat strategy j by a
  two-sided paired t-test over the seeds at α = 0.05. Several settings
  (datasets, pool sizes, budgets) add up (`combine_penalties`), each
  contributing at most 1 to an entry;
- `beats_random`: for each strategy, a one-sided paired t-test over the
  seeds on the area under the curve against random.

Every function reads ``records[strategy][seed]``, the rounds of
``results.jsonl`` (`jal.comparison.load_records`), and writes nothing.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from jal import results
from jal.errors import JalError

# The significance level of every test here (Ash et al. 2020 and Lüth et al. 2023 use 0.05).
ALPHA = 0.05
# The strategy every other one should beat (`beats_random`).
RANDOM = 'random'
PENALTY_TEST = 'two-sided paired t-test over seeds at each labeled-set size'
AUC_TEST = 'one-sided paired t-test on AUC over seeds (H1: mean AUC difference > 0)'


def area_under_curve(num_labeled: Sequence[float], accuracy: Sequence[float]) -> float:
  """The normalised area under accuracy vs labels: the trapezoid rule over the
  labels, divided by their range (so it is an accuracy: the curve's mean
  height). With one round it is that round's accuracy.

  Args:
    num_labeled: increasing numbers of labels ``[R]``.
    accuracy: the accuracies ``[R]`` at them, in [0, 1].

  Raises:
    ValueError: the lengths differ, are 0, or the labels do not increase.
  """
  x, y = np.asarray(num_labeled, np.float64), np.asarray(accuracy, np.float64)
  if x.shape != y.shape or x.ndim != 1 or not x.size:
    raise ValueError(f'num_labeled {x.shape} and accuracy {y.shape} must be equal, non-empty 1-D')
  if x.size == 1:
    return float(y[0])
  if not np.all(np.diff(x) > 0):
    raise ValueError('num_labeled must increase')
  return float(np.sum((y[1:] + y[:-1]) / 2 * np.diff(x)) / (x[-1] - x[0]))



def paired_curves(records: dict[str, dict[int, list[dict]]],
                  strategies: Sequence[str]) -> tuple[list[int], np.ndarray, np.ndarray]:
  """The learning curves of ``strategies`` paired by seed: the seeds all of
  them ran, cut to the rounds all those runs finished.

  Args:
    records: ``records[strategy][seed]`` (`jal.comparison.load_records`).
    strategies: the strategies to pair, each in ``records``.

  Returns:
    ``(seeds, num_labeled, metric)``: the common seeds, sorted; the labels
    per round, int64 ``[R]``; and the headline test metric (`jal.results.headline`),
    float64 ``[S, K, R]`` (strategy, seed, round). No common seed: ``K = R = 0``.

  Raises:
    JalError: two runs labeled different numbers at the same round.
  """
  seeds = sorted(set.intersection(*(set(records[s]) for s in strategies)))
  if not seeds:
    return [], np.zeros(0, np.int64), np.zeros((len(strategies), 0, 0))
  rounds = min(len(records[s][k]) for s in strategies for k in seeds)
  runs = [[records[s][k][:rounds] for k in seeds] for s in strategies]
  labels = np.array([[[r['num_labeled'] for r in run] for run in by_seed] for by_seed in runs],
                    np.int64)
  if not (labels == labels[0, 0]).all():
    raise JalError(f'{", ".join(strategies)}: the runs labeled different numbers per round '
                   f'({labels.tolist()}); were they run with different configs?')
  key = results.headline(runs[0][0][0])
  metric = np.array([[[r[key] for r in run] for run in by_seed] for by_seed in runs], np.float64)
  return seeds, labels[0, 0], metric


def paired_t_test(a: np.ndarray, b: np.ndarray,
                  alternative: str = 'two-sided') -> tuple[float, float]:
  """Student's paired t-test of ``a`` against ``b`` (`scipy.stats.ttest_rel`).

  ``t = mean(d) / (std(d, ddof=1) / sqrt(n))`` with ``d = a - b``, ``n - 1``
  degrees of freedom. All ``d`` zero: the test is undefined, ``(nan, nan)``.
  All ``d`` equal and nonzero: ``t = ±inf``, and p is 0 on that side (scipy).

  Args:
    a, b: float ``[n]``, paired (the same seeds, in the same order), ``n >= 2``.
    alternative: ``'two-sided'``, or ``'greater'`` (H1: mean of ``a - b`` > 0).

  Returns:
    ``(t, p)``.
  """
  from scipy import stats  # imported here: keeps `python -m jal.compare --help` fast
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if np.all(a == b):
    return math.nan, math.nan
  with warnings.catch_warnings():  # "catastrophic cancellation" when the d are nearly equal
    warnings.simplefilter('ignore', RuntimeWarning)
    result = stats.ttest_rel(a, b, alternative=alternative)
  return float(result.statistic), float(result.pvalue)


def _before_saturation(random_mean: np.ndarray, fraction: float) -> np.ndarray:
  """Ash et al.'s cut: keep the rounds before the first (after round 0) at which
  random's mean exceeds ``fraction`` of its mean at the last round. bool ``[R]``."""
  over = np.flatnonzero(random_mean[1:] > fraction * random_mean[-1])
  end = over[0] + 1 if over.size else random_mean.size
  return np.arange(random_mean.size) < end


def check_saturation(saturation: float | None, strategies: Sequence[str]) -> None:
  """Raises JalError unless ``saturation`` is None, or in (0, 1] with random
  among ``strategies``."""
  if saturation is not None and not 0 < saturation <= 1:
    raise JalError(f'--saturation={saturation} must be in (0, 1], e.g. 0.99 (Ash et al.), '
                   'or left unset to compare at every labeled-set size')
  if saturation is not None and RANDOM not in strategies:
    raise JalError(f'--saturation cuts where random saturates, and random is not among the '
                   f'strategies ({", ".join(strategies)}); add it or drop --saturation')


def penalty_matrix(records: dict[str, dict[int, list[dict]]],
                   saturation: float | None = None) -> dict:
  """The pairwise penalty matrix of one setting (Ash et al. 2020, Sec. 5, Fig. 4).

  At each of the L compared labeled-set sizes and for each pair of strategies
  (i, j), a two-sided paired t-test over the seeds (`paired_t_test`; paired
  because a seed's strategies share its initial pool) on the headline test
  metric; when p < `ALPHA`, the better of the two, say i, scores
  ``P[i, j] += 1 / L_ij``. ``P[i, j]`` is thus the fraction of the
  labeled-set sizes at which i beat j: one setting adds at most 1 to an entry.

  The ``L_ij`` labeled-set sizes of a pair: the rounds every strategy
  finished on the common seeds, except those at which the two strategies'
  results are the same on every seed, bit for bit. In jal that is round 0,
  the shared initial pool, where no strategy has queried yet, unless one of
  the two trains another task model (BatchBALD's and BALD's MC-dropout
  model, an ensemble) or has another initial pool (``--initial_pools``
  arms): then round 0 compares the two task models, and counts for that
  pair only. Ash et al.'s code and Lüth et al.'s count every checkpoint,
  their initial one included, where their independent runs differed by
  noise only; counting jal's identical round 0 would cap an entry at
  (R - 1) / R. Sizes at which two strategies merely do not differ
  significantly count, as in both. Lüth et al. (2023) count every size up
  to the budget; Ash et al. (2020) stop where random reaches 99% of its
  final accuracy, to leave out the saturated end of the curves:
  ``saturation=0.99`` does that (Ash et al. also spaced their checkpoints
  exponentially, 100 + 2^k x batch; jal compares every round). Their code
  pairs the first (at most 5) runs of each algorithm by run index; jal pairs
  every seed both strategies ran, by seed.

  Args:
    records: ``records[strategy][seed]`` (`jal.comparison.load_records`).
    saturation: Ash et al.'s cut, e.g. 0.99 (needs ``'random'`` among the
      strategies), or None: every size (Lüth et al.).

  Returns:
    ``strategies``, ``seeds``, ``num_labeled`` (the sizes compared, for at
    least one pair), ``pair_sizes`` (``L_ij`` as nested lists, the diagonal
    0), ``matrix`` (``P`` as nested lists, row i beats column j), ``column_mean``
    (the average penalty each strategy receives, Ash et al.'s bottom row:
    the column sum over all S rows, the zero diagonal included; Lüth et al.
    divide by S - 1), ``row_sum`` (its wins); or ``{'n/a': why}`` with fewer
    than two strategies, fewer than two seeds run by every strategy, or no
    size to compare.

  Raises:
    JalError: runs that labeled different numbers per round; ``saturation``
      outside (0, 1], or without random.
  """
  strategies = list(records)
  check_saturation(saturation, strategies)
  if len(strategies) < 2:
    return {'n/a': 'a penalty matrix needs at least two strategies'}
  seeds, labels, metric = paired_curves(records, strategies)
  if len(seeds) < 2:
    return {'n/a': f'a paired test over seeds needs at least 2 seeds run by every strategy; '
                   f'there {"is" if len(seeds) == 1 else "are"} {len(seeds)}'}
  # differ[i, j, r]: strategies i and j differ at round r on some seed.
  differ = np.any(metric[:, None] != metric[None, :], axis=2)
  if saturation is not None:
    differ &= _before_saturation(metric[strategies.index(RANDOM)].mean(axis=0), saturation)
  pair_sizes = differ.sum(axis=2)
  sizes = np.flatnonzero(differ.any(axis=(0, 1)))
  if not sizes.size:
    return {'n/a': 'no labeled-set size to compare: the strategies have not queried yet '
                   '(or all of them saturated)'}
  matrix = np.zeros((len(strategies), len(strategies)))
  for r in sizes:
    for i in range(len(strategies)):
      for j in range(i + 1, len(strategies)):
        if not differ[i, j, r]:
          continue
        t, p = paired_t_test(metric[i, :, r], metric[j, :, r])
        if p < ALPHA:  # False for nan
          matrix[(i, j) if t > 0 else (j, i)] += 1 / pair_sizes[i, j]
  return {'strategies': strategies, 'seeds': seeds, 'num_labeled': labels[sizes].tolist(),
          'pair_sizes': pair_sizes.tolist(), **_penalty_scores(matrix)}


def _penalty_scores(matrix: np.ndarray) -> dict:
  return {'matrix': matrix.tolist(), 'column_mean': matrix.mean(axis=0).tolist(),
          'row_sum': matrix.sum(axis=1).tolist()}


def combine_penalties(penalties: Sequence[dict], names: Sequence[str]) -> dict:
  """The penalty matrix over several settings: the sum of theirs (Ash et al.
  2020, Fig. 4; an entry is at most the number of settings D).

  Args:
    penalties: `penalty_matrix` of each setting, with the same strategies.
    names: the settings' names (their comparison directories), for the result
      and for errors.

  Returns:
    ``strategies`` (the first setting's order), ``settings`` (``names``),
    ``matrix``, ``column_mean``, ``row_sum`` as in `penalty_matrix`.

  Raises:
    JalError: a setting without a matrix (its reason) or with other strategies.
  """
  strategies = None
  total = None
  for penalty, name in zip(penalties, names):
    if 'n/a' in penalty:
      raise JalError(f'{name}: no penalty matrix to add up ({penalty["n/a"]})')
    if strategies is None:
      strategies = penalty['strategies']
      total = np.zeros((len(strategies), len(strategies)))
    if sorted(penalty['strategies']) != sorted(strategies):
      raise JalError(f'{name} compares {", ".join(penalty["strategies"])}, not '
                     f'{", ".join(strategies)}; settings add up only over the same strategies')
    order = [penalty['strategies'].index(s) for s in strategies]
    total += np.asarray(penalty['matrix'])[np.ix_(order, order)]
  return {'strategies': strategies, 'settings': list(names), **_penalty_scores(total)}


def _json_number(x: float) -> float | None:
  """``x``, or None where it is NaN or infinite (standard JSON has neither)."""
  return x if math.isfinite(x) else None


def beats_random(records: dict[str, dict[int, list[dict]]]) -> dict[str, dict]:
  """Whether each strategy beats random: a one-sided paired t-test over seeds
  on the area under the curve (`area_under_curve`), H1: the strategy's AUC
  exceeds random's on average, at `ALPHA` (`AUC_TEST`).

  A test of jal's, not of Ash et al. or Lüth et al. (who report AUC means
  and the penalty matrix). Student's t rather than Wilcoxon's signed-rank
  test: with n seeds the smallest one-sided signed-rank p is 2^-n, 0.125 for
  3 seeds, so it could never reach 0.05; the t-test can, at the price of
  assuming roughly normal AUC differences over seeds. Each strategy is paired
  with random on the seeds both ran, over the rounds both finished.

  Returns:
    ``{strategy: {...}}`` for every strategy but random: ``test``, ``seeds``,
    ``auc_difference_mean`` (strategy minus random), ``t`` and ``p`` (both
    None when every difference is 0; ``t`` None, being infinite, and p = 0
    when every difference is the same: standard JSON has no infinity) and
    ``significant``;
    or ``test`` and ``n/a`` (why) when random is not among the strategies or
    fewer than 2 seeds are common.
  """
  if RANDOM not in records:
    return {s: {'test': AUC_TEST, 'n/a': 'random is not among the strategies'} for s in records}
  out = {}
  for strategy in records:
    if strategy == RANDOM:
      continue
    seeds, labels, metric = paired_curves(records, [strategy, RANDOM])
    if len(seeds) < 2:
      out[strategy] = {'test': AUC_TEST, 'n/a': f'needs at least 2 seeds run by both it and '
                                                f'random (a paired test); has {len(seeds)}'}
      continue
    auc = np.array([[area_under_curve(labels, curve) for curve in m] for m in metric])
    t, p = paired_t_test(auc[0], auc[1], alternative='greater')
    out[strategy] = {'test': AUC_TEST, 'seeds': seeds,
                     'auc_difference_mean': float(np.mean(auc[0] - auc[1])),
                     't': _json_number(t), 'p': _json_number(p), 'significant': bool(p < ALPHA)}
  return out
