"""Comparisons: several strategies x several seeds (trials) on one experiment config.

Every (strategy, seed) is an ordinary run of `jal.experiment.run` in a work
directory of its own, ``<workdir>/<strategy>/seed<seed>``, so each resumes
on its own; within a trial (a seed) every strategy starts from the same
initial pool, because the initial pool is drawn from the seed alone. The
summary reports each strategy's test accuracy as mean ± standard deviation
over the seeds at each number of labels (the papers' figures), and the
area under the accuracy-vs-labels curve, per seed and then mean ± std.

Standard deviations are the sample standard deviation over trials
(``ddof=1``, 0 for a single trial).

Which differences are real: the strategies of a seed share its initial
pool, so their results are paired by seed, and the summary adds the
pairwise penalty matrix (Ash et al. 2020) and, for each strategy, a paired
test over the seeds of whether it beats random (`jal.significance`).
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections
import numpy as np

from jal import checks, dirlock, experiment, initial_pools as initial_pools_lib, platform
from jal import results, significance, strategies as strategies_lib, trials
from jal import workdir as workdir_lib
from jal.errors import JalError

SUMMARY_JSON = 'summary.json'
SUMMARY_TABLE = 'summary.md'
ACCURACY_PLOT = 'accuracy.png'
CLASS_COUNTS_PLOT = 'class_counts.png'
EXCLUDED_PLOT = 'excluded_classes.png'
PENALTY_PLOT = 'penalty_matrix.png'



def run_dir(workdir: str, arm: str, seed: int) -> str:
  """The work directory of one (arm, seed) run of a comparison."""
  return os.path.join(workdir, arm, f'seed{seed}')


def arms(strategies: Sequence[str], initial_pools: Sequence[str] | None = None) -> list[str]:
  """The compared arms: each strategy, or each ``'<initial pool>/<strategy>'``."""
  if not initial_pools:
    return list(strategies)
  return [f'{pool}/{strategy}' for pool in initial_pools for strategy in strategies]


def trial_config(config: ml_collections.ConfigDict, arm: str,
                 seed: int) -> ml_collections.ConfigDict:
  """A copy of ``config`` for ``arm`` (``'strategy'`` or ``'initial_pool/strategy'``)
  with ``seed`` set."""
  out = config.copy_and_resolve_references()
  pool, _, strategy = arm.rpartition('/')
  out.strategy.name = strategy
  if pool:
    out.initial_pool.name = pool
  out.seed = seed
  return out


def run_comparison(config: ml_collections.ConfigDict, workdir: str, strategies: Sequence[str],
                   seeds: Sequence[int], overwrite: bool = False,
                   initial_pools: Sequence[str] | None = None,
                   vectorize_seeds: bool | None = None, recover: bool = False,
                   settings: Sequence[str] = (), saturation: float | None = None) -> dict:
  """Runs (or resumes) every (arm, seed), then writes the summary.

  With ``vectorize_seeds`` the seeds of an arm run in lockstep and their task
  models train together, vmapped in one program (`jal.trials.run_trials`;
  strategies with a training of their own, such as VAAL or SCAL, still train
  one seed after another). Otherwise trials run one after another, each arm
  of a seed in turn, so a stopped comparison has whole trials done. Either
  way each run resumes where it stopped and writes the same files.
  ``vectorize_seeds=None`` leaves it to `jal.platform.vectorized_members`:
  on GPU/TPU, not on CPU, where vmapped convolutions are many times slower.

  Args:
    config: the experiment config every run starts from.
    workdir: the comparison's directory (runs below it, summary in it).
    strategies: names of `jal.strategies` (at least one, no repeats).
    seeds: trial seeds (at least one, no repeats).
    overwrite: delete and redo runs already there instead of resuming them.
    initial_pools: optional names of `jal.initial_pools` strategies; then
      every (initial pool, strategy) pair is an arm (Chandra et al.'s study).
    vectorize_seeds: train the seeds of an arm together (None: on GPU/TPU).
    recover: resume each run from its newest intact checkpoint when its
      newest is damaged (`jal.experiment.set_up`).
    settings: other comparisons' directories whose penalty matrices add to
      this one's (`write_summary`).
    saturation: Ash et al.'s cut for the penalty matrix (`jal.significance.penalty_matrix`).

  Returns:
    The summary (see `summarize`).

  Raises:
    JalError: an unknown strategy or initial pool, an empty or repeated list,
      a bad seed, a directory that is not a comparison, any arm's bad
      config (all before anything is written), or any error of a run
      (finished runs and rounds are kept).
  """
  strategies, seeds = _checked_lists(strategies, seeds)
  if config.oracle.name == 'human':
    raise JalError("a comparison simulates the oracle over seeds and strategies; with "
                   "config.oracle.name='human' a person would answer every arm: run "
                   'python -m jal.main for one run instead')
  for strategy in strategies:
    strategies_lib.get(strategy)  # fails before anything runs
  for pool in initial_pools or ():
    initial_pools_lib.check_settings(initial_pools_lib.default_config(name=pool))
  if initial_pools and len(set(initial_pools)) != len(initial_pools):
    raise JalError(f'--initial_pools={",".join(initial_pools)} must name each pool once')
  names = arms(strategies, initial_pools)
  workdir_lib.inspect_comparison(workdir)
  check_settings(workdir, settings)
  significance.check_saturation(saturation, names)
  for arm in names:  # every arm's checks, before anything is written
    experiment.build(trial_config(config, arm, seeds[0]))
  with prepare(workdir):
    if platform.vectorized_members(vectorize_seeds):
      for arm in names:
        trials.run_trials([trial_config(config, arm, seed) for seed in seeds],
                          [run_dir(workdir, arm, seed) for seed in seeds], overwrite=overwrite,
                          recover=recover)
    else:
      for seed in seeds:
        for arm in names:
          experiment.run(trial_config(config, arm, seed), run_dir(workdir, arm, seed),
                         overwrite=overwrite, recover=recover)
    return write_summary(workdir, names, seeds, settings=settings, saturation=saturation)


def prepare(workdir: str) -> dirlock.DirectoryLock:
  """Makes ``workdir`` a comparison's directory and locks it.

  Creates it (or accepts an empty one, or a comparison's) and writes its
  marker, ``jal_comparison.json``. A notebook that runs the (arm, seed)
  runs itself calls this first, so that `write_summary` accepts the
  directory; release the lock when done (or use ``with prepare(dir):``).

  Returns:
    The directory's lock, held.

  Raises:
    JalError: ``workdir`` is neither new, empty nor a comparison, is in use
      by another process, or cannot be created.
  """
  workdir_lib.inspect_comparison(workdir)
  try:
    os.makedirs(workdir, exist_ok=True)
  except OSError as e:
    raise workdir_lib.os_error(e, 'choose another --workdir') from None
  lock = dirlock.DirectoryLock(workdir)
  lock.acquire()
  try:
    workdir_lib.inspect_comparison(workdir)
    workdir_lib.start_comparison(workdir)
  except BaseException:
    lock.release()
    raise
  return lock


def _checked_lists(strategies, seeds) -> tuple[list[str], list[int]]:
  strategies = list(strategies)
  seeds = [checks.check_seed(s, f'--seeds={",".join(map(str, seeds))}: seed') for s in seeds]
  if not strategies or len(set(strategies)) != len(strategies):
    raise JalError(f'--strategies={",".join(strategies)} must name at least one strategy, '
                   'each once')
  if not seeds or len(set(seeds)) != len(seeds):
    raise JalError(f'--seeds={",".join(map(str, seeds))} must give at least one seed, each once')
  return strategies, seeds


def load_records(workdir: str, strategies: Sequence[str],
                 seeds: Sequence[int]) -> dict[str, dict[int, list[dict]]]:
  """``records[arm][seed]``: the rounds in each run's ``results.jsonl`` (absent: skipped).

  ``strategies``: the arms (`arms`), strategy names when no initial pools are compared.
  """
  out: dict[str, dict[int, list[dict]]] = {}
  for strategy in strategies:
    for seed in seeds:
      path = os.path.join(run_dir(workdir, strategy, seed), workdir_lib.RESULTS)
      if os.path.exists(path):
        rows = results.read_jsonl(path)
        if rows:
          out.setdefault(strategy, {})[seed] = rows
  return out


def _std(values: np.ndarray, axis: int = 0) -> np.ndarray:
  return np.std(values, axis=axis, ddof=1) if values.shape[axis] > 1 else np.zeros_like(
      np.mean(values, axis=axis))


def summarize(records: dict[str, dict[int, list[dict]]]) -> dict:
  """Mean ± std over seeds of each strategy's test accuracy per number of labels.

  Only the rounds every seed of a strategy has finished enter its curve, so
  a comparison still running summarises consistently.

  Args:
    records: ``records[strategy][seed]``, each a list of round records.

  Returns:
    ``{strategy: {...}}`` with ``seeds``; ``metric``: the records' headline
    (``'test_accuracy'``, or ``'test_miou'`` for segmentation); ``num_labeled``
    ``[R]``; ``accuracy_mean``, ``accuracy_std`` ``[R]``: that metric's; ``auc`` (per seed, in seed
    order), ``auc_mean``, ``auc_std`` (`jal.significance.area_under_curve`); and
    ``query_class_counts_mean`` ``[K]``: the true classes of everything the
    strategy queried (all rounds), averaged over seeds (pixels for
    segmentation). With a biased initial pool (records with
    ``excluded_classes``), also ``excluded_queried_mean`` and ``_std`` per
    query round: the examples (pixels) of the excluded classes each query
    held (PAL's Fig. 3 and Fig. 7, right). Lists of floats.

  Raises:
    JalError: two seeds of a strategy labeled different numbers at the same round.
  """
  out = {}
  for strategy, by_seed in records.items():
    seeds = sorted(by_seed)
    rounds = min(len(by_seed[s]) for s in seeds)
    labels = np.array([[r['num_labeled'] for r in by_seed[s][:rounds]] for s in seeds])
    if not (labels == labels[0]).all():
      raise JalError(f'{strategy}: the seeds labeled different numbers per round '
                     f'({labels.tolist()}); were they run with different configs?')
    key = results.headline(by_seed[seeds[0]][0])
    accuracy = np.array([[r[key] for r in by_seed[s][:rounds]] for s in seeds])
    auc = np.array([significance.area_under_curve(labels[0], a) for a in accuracy])
    counts = np.array([np.sum([r['query_class_counts'] for r in by_seed[s][:rounds]], axis=0)
                       for s in seeds], np.float64)
    excluded = by_seed[seeds[0]][0].get('excluded_classes')
    out[strategy] = {
        'seeds': seeds,
        'metric': key,
        'num_labeled': labels[0].tolist(),
        'accuracy_mean': accuracy.mean(axis=0).tolist(),
        'accuracy_std': _std(accuracy).tolist(),
        'auc': auc.tolist(),
        'auc_mean': float(auc.mean()),
        'auc_std': float(_std(auc)),
        'query_class_counts_mean': counts.mean(axis=0).tolist(),
    }
    if excluded:  # per query round: how much of the classes the initial pool lacked
      area = np.array([[np.sum(np.asarray(r['query_class_counts'])[excluded])
                        for r in by_seed[s][:rounds]
                        if r['query_class_counts'] is not None and r.get('query_size', 1)]
                       for s in seeds], np.float64)
      out[strategy].update(excluded_classes=list(excluded),
                           excluded_queried_mean=area.mean(axis=0).tolist(),
                           excluded_queried_std=_std(area).tolist())
  return out


def _attach_penalty(summary: dict, key: str, penalty: dict) -> None:
  """Each strategy's row of ``penalty`` into ``summary[strategy][key]``."""
  for strategy in summary:
    if 'n/a' in penalty:
      summary[strategy][key] = {'n/a': penalty['n/a']}
      continue
    names = penalty['strategies']
    i = names.index(strategy)
    entry = {'test': significance.PENALTY_TEST, 'alpha': significance.ALPHA,
             'beats': {other: penalty['matrix'][i][j] for j, other in enumerate(names) if j != i},
             'wins': penalty['row_sum'][i], 'penalty': penalty['column_mean'][i]}
    if 'pair_sizes' in penalty:  # one setting: how many sizes each fraction is out of
      entry['sizes_compared'] = {other: penalty['pair_sizes'][i][j]
                                 for j, other in enumerate(names) if j != i}
    entry.update({k: penalty[k] for k in ('num_labeled', 'seeds', 'settings') if k in penalty})
    summary[strategy][key] = entry


def _format_p(p: float | None) -> str:
  if p is None:
    return 'undefined'
  return f'{p:.3f}' if p >= 0.001 else '0' if p == 0 else f'{p:.0e}'


def _beats_random_cell(entry: dict | None) -> str:
  if entry is None:
    return '—'
  if 'n/a' in entry:
    return f"n/a: {entry['n/a']}"
  verdict = 'yes' if entry['significant'] else 'no'
  return (f"{verdict} (p = {_format_p(entry['p'])}, "
          f"{100 * entry['auc_difference_mean']:+.1f})")


def penalty_table(penalty: dict) -> str:
  """A Markdown table of `jal.significance.penalty_matrix` or `combine_penalties`: row i beats
  column j, with each row's sum (wins) and each column's mean (penalty, lower is better)."""
  if 'n/a' in penalty:
    return f"n/a: {penalty['n/a']}\n"
  names = penalty['strategies']
  head = ['row beats column'] + [f'`{s}`' for s in names] + ['wins (row sum)']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for i, strategy in enumerate(names):
    cells = ['—' if i == j else f'{v:.2f}' for j, v in enumerate(penalty['matrix'][i])]
    lines.append('| ' + ' | '.join([f'`{strategy}`', *cells, f"{penalty['row_sum'][i]:.2f}"])
                 + ' |')
  lines.append('| ' + ' | '.join(['penalty (column mean)',
                                  *[f'{v:.2f}' for v in penalty['column_mean']], '']) + ' |')
  return '\n'.join(lines) + '\n'


def _penalty_text(penalty: dict, over_settings: bool) -> str:
  """The penalty matrix's section of ``summary.md``."""
  if over_settings:
    title = f"## Pairwise penalty matrix over {len(penalty['settings'])} settings\n\n"
    if 'n/a' in penalty:
      return title + penalty_table(penalty)
    about = ('The sum of the settings\' matrices (each entry at most the number of settings): '
             + ', '.join(f'`{name}`' for name in penalty['settings']) + '.\n\n')
    return title + about + penalty_table(penalty)
  title = '## Pairwise penalty matrix\n\n'
  if 'n/a' in penalty:
    return title + penalty_table(penalty)
  sizes = penalty['num_labeled']
  counts = {c for i, row in enumerate(penalty['pair_sizes']) for j, c in enumerate(row) if i != j}
  listed = ', '.join(f'{n:,}' for n in sizes)
  test = (f"{significance.PENALTY_TEST} ({len(penalty['seeds'])} seeds, "
          f"α = {significance.ALPHA})")
  if counts == {len(sizes)}:
    about = (f'Row i, column j: the fraction of the {len(sizes)} labeled-set sizes ({listed}) '
             f'at which i beat j by a {test}; Ash et al. (2020), Sec. 5.')
  else:
    about = (f'Row i, column j: the fraction of the labeled-set sizes ({listed}) at which i beat '
             f'j by a {test}, out of the sizes at which the two differ on some seed; Ash et al. '
             '(2020), Sec. 5. A pair whose results are the same on every seed at a size (round '
             "0's shared initial pool, unless one of the two trains another task model) leaves "
             'that size out of its fraction (`sizes_compared` in summary.json).')
  about += (' Wins: the row sum; penalty: the column mean over all rows, the average penalty a '
            'strategy receives (lower is better).\n\n')
  return title + about + penalty_table(penalty)


def summary_table(summary: dict) -> str:
  """A Markdown table: one row per strategy, test accuracy (%) mean ± std at
  each number of labels, and the area under the curve; when the summary has
  `beats_random`'s verdicts, a last column with them (p and the mean AUC
  difference in points)."""
  labels = sorted({n for s in summary.values() for n in s['num_labeled']})
  verdicts = any('beats_random' in s for s in summary.values())
  head = (['strategy', 'seeds'] + [f'{n:,}' for n in labels] + ['AUC']
          + (['beats random (AUC)'] if verdicts else []))
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for strategy, s in summary.items():
    cells = {n: f"{100 * m:.1f} ± {100 * d:.1f}"
             for n, m, d in zip(s['num_labeled'], s['accuracy_mean'], s['accuracy_std'])}
    row = [f'`{strategy}`', str(len(s['seeds']))] + [cells.get(n, '') for n in labels]
    row.append(f"{100 * s['auc_mean']:.1f} ± {100 * s['auc_std']:.1f}")
    if verdicts:
      row.append(_beats_random_cell(s.get('beats_random')))
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines) + '\n'


def check_settings(workdir: str, settings: Sequence[str]) -> list[str]:
  """The other settings' comparison directories (``--settings``), checked.

  Raises:
    JalError: one is repeated, is ``workdir`` itself, or is not an existing comparison.
  """
  settings = list(settings)
  real = [os.path.realpath(d) for d in settings]
  if len(set(real)) != len(real) or os.path.realpath(workdir) in real:
    raise JalError(f'--settings={",".join(settings)} must name each other comparison once, '
                   f'and not --workdir ({workdir}) itself')
  for setting in settings:
    workdir_lib.inspect_comparison(setting, must_exist=True)
  return settings


def _setting_records(workdir: str, strategies: Sequence[str], seeds: Sequence[int]) -> dict:
  records = load_records(workdir, strategies, seeds)
  missing = [s for s in strategies if s not in records]
  if missing:
    raise JalError(f'{workdir} holds no finished round of {", ".join(missing)}; every '
                   'comparison in --settings must run the same strategies')
  return records


def write_summary(workdir: str, strategies: Sequence[str], seeds: Sequence[int],
                  settings: Sequence[str] = (), saturation: float | None = None) -> dict:
  """Summarises the runs found in ``workdir``; writes ``summary.json``,
  ``summary.md``, ``accuracy.png`` (mean lines and std bands),
  ``class_counts.png`` (what each strategy queried, by true class) and
  ``penalty_matrix.png`` (`jal.significance.penalty_matrix`, or the sum over settings).

  Args:
    workdir: the comparison's directory.
    strategies: its arms (`arms`).
    seeds: its seeds.
    settings: other comparisons' directories (other datasets, pool sizes,
      budgets; the same strategies and seeds), whose penalty matrices add to
      this one's (`jal.significance.combine_penalties`).
    saturation: Ash et al.'s cut for the penalty matrices (`jal.significance.penalty_matrix`).

  Returns:
    The summary (see `summarize`), each strategy's entry with ``penalty``
    (its row of the penalty matrix: ``beats`` {other: P[i, j]}, ``wins``,
    ``penalty``, the sizes and seeds compared, or ``n/a``), ``beats_random``
    (`jal.significance.beats_random`; not for random itself) and, with ``settings``,
    ``penalty_settings`` (the same over every setting).

  Raises:
    JalError: ``workdir`` or a setting is not a comparison, a ``results.jsonl``
      is damaged, no run has a finished round, a setting lacks a strategy.
  """
  workdir_lib.inspect_comparison(workdir, must_exist=True)
  settings = check_settings(workdir, settings)
  records = load_records(workdir, strategies, seeds)
  if not records:
    raise JalError(f'{workdir} holds no finished round of {", ".join(strategies)} for seeds '
                   f'{", ".join(map(str, seeds))}; run the comparison first')
  summary = summarize(records)
  penalty = significance.penalty_matrix(records, saturation)
  _attach_penalty(summary, 'penalty', penalty)
  for strategy, entry in significance.beats_random(records).items():
    summary[strategy]['beats_random'] = entry
  combined = None
  if settings:
    names = [workdir, *settings]
    each = [penalty] + [significance.penalty_matrix(_setting_records(d, strategies, seeds),
                                                    saturation) for d in settings]
    reasons = [f'{n}: {p["n/a"]}' for n, p in zip(names, each) if 'n/a' in p]
    combined = ({'n/a': '; '.join(reasons), 'settings': names} if reasons
                else significance.combine_penalties(each, names))
    _attach_penalty(summary, 'penalty_settings', combined)
  first = next(iter(next(iter(records.values())).values()))[0]
  title = f"{first['dataset']}: {len(seeds)} seeds"
  with open(os.path.join(workdir, SUMMARY_JSON), 'w') as f:
    json.dump(summary, f, indent=1, sort_keys=True)
  name = results.METRIC_NAMES.get(results.headline(first), results.headline(first))
  with open(os.path.join(workdir, SUMMARY_TABLE), 'w') as f:
    f.write(f'# {title}\n\n{name[0].upper()}{name[1:]} (%), mean ± std over seeds; AUC: area '
            f'under the {name}-vs-labels curve over its range.\n\n' + summary_table(summary))
    if any('beats_random' in s for s in summary.values()):
      f.write(f'\nBeats random: {significance.AUC_TEST}, α = {significance.ALPHA}; in brackets '
              "p and the mean AUC difference to random in points. Student's t, not Wilcoxon's "
              'signed-rank test: with n seeds the smallest one-sided signed-rank p is 2^-n '
              '(0.125 for 3 seeds), '
              'so it could not reach 0.05; the t-test assumes roughly normal AUC differences '
              'over seeds.\n')
    f.write('\n' + _penalty_text(penalty, over_settings=False))
    if combined is not None:
      f.write('\n' + _penalty_text(combined, over_settings=True))
  results.plot_comparison(summary, os.path.join(workdir, ACCURACY_PLOT), title)
  unit = 'pixels' if results.headline(first) == 'test_miou' else 'examples'
  results.plot_class_counts(summary, os.path.join(workdir, CLASS_COUNTS_PLOT),
                            f"{first['dataset']}: queried {unit} per true class "
                            '(all rounds, mean over seeds)')
  if any('excluded_queried_mean' in s for s in summary.values()):
    results.plot_excluded(summary, os.path.join(workdir, EXCLUDED_PLOT),
                          f"{first['dataset']}: queried {unit} of the classes missing from the "
                          f"initial pool {first['excluded_classes']}", unit)
  shown = combined if combined is not None else penalty
  path = os.path.join(workdir, PENALTY_PLOT)
  if 'n/a' in shown:
    if os.path.exists(path):  # an earlier summary's matrix would no longer be true
      os.remove(path)
  elif combined is not None:
    results.plot_penalty_matrix(shown['strategies'], shown['matrix'], shown['column_mean'], path,
                                f'pairwise penalty matrix over {len(settings) + 1} settings, '
                                f'{len(seeds)} seeds', vmax=len(settings) + 1)
  else:
    results.plot_penalty_matrix(shown['strategies'], shown['matrix'], shown['column_mean'], path,
                                f"{first['dataset']}: pairwise penalty matrix, {len(seeds)} seeds, "
                                f"{len(shown['num_labeled'])} labeled-set sizes", vmax=1)
  return summary
