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
"""

from __future__ import annotations

import json
import os
from typing import Sequence

import ml_collections
import numpy as np

from jal import checks, dirlock, experiment, initial_pools as initial_pools_lib, platform
from jal import results, strategies as strategies_lib, trials, workdir as workdir_lib
from jal.errors import JalError

SUMMARY_JSON = 'summary.json'
SUMMARY_TABLE = 'summary.md'
ACCURACY_PLOT = 'accuracy.png'
CLASS_COUNTS_PLOT = 'class_counts.png'
EXCLUDED_PLOT = 'excluded_classes.png'


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
                   vectorize_seeds: bool | None = None, recover: bool = False) -> dict:
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
    return write_summary(workdir, names, seeds)


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
    order), ``auc_mean``, ``auc_std`` (`area_under_curve`); and
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
    auc = np.array([area_under_curve(labels[0], a) for a in accuracy])
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


def summary_table(summary: dict) -> str:
  """A Markdown table: one row per strategy, test accuracy (%) mean ± std at
  each number of labels, and the area under the curve."""
  labels = sorted({n for s in summary.values() for n in s['num_labeled']})
  head = ['strategy', 'seeds'] + [f'{n:,}' for n in labels] + ['AUC']
  lines = ['| ' + ' | '.join(head) + ' |', '|' + ' --- |' * len(head)]
  for strategy, s in summary.items():
    cells = {n: f"{100 * m:.1f} ± {100 * d:.1f}"
             for n, m, d in zip(s['num_labeled'], s['accuracy_mean'], s['accuracy_std'])}
    row = [f'`{strategy}`', str(len(s['seeds']))] + [cells.get(n, '') for n in labels]
    row.append(f"{100 * s['auc_mean']:.1f} ± {100 * s['auc_std']:.1f}")
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines) + '\n'


def write_summary(workdir: str, strategies: Sequence[str], seeds: Sequence[int]) -> dict:
  """Summarises the runs found in ``workdir``; writes ``summary.json``,
  ``summary.md``, ``accuracy.png`` (mean lines and std bands) and
  ``class_counts.png`` (what each strategy queried, by true class).

  Returns:
    The summary (see `summarize`).

  Raises:
    JalError: ``workdir`` is not a comparison, a ``results.jsonl`` is
      damaged, or no run has a finished round.
  """
  workdir_lib.inspect_comparison(workdir, must_exist=True)
  records = load_records(workdir, strategies, seeds)
  if not records:
    raise JalError(f'{workdir} holds no finished round of {", ".join(strategies)} for seeds '
                   f'{", ".join(map(str, seeds))}; run the comparison first')
  summary = summarize(records)
  first = next(iter(next(iter(records.values())).values()))[0]
  title = f"{first['dataset']}: {len(seeds)} seeds"
  with open(os.path.join(workdir, SUMMARY_JSON), 'w') as f:
    json.dump(summary, f, indent=1, sort_keys=True)
  name = results.METRIC_NAMES.get(results.headline(first), results.headline(first))
  with open(os.path.join(workdir, SUMMARY_TABLE), 'w') as f:
    f.write(f'# {title}\n\n{name[0].upper()}{name[1:]} (%), mean ± std over seeds; AUC: area '
            f'under the {name}-vs-labels curve over its range.\n\n' + summary_table(summary))
  results.plot_comparison(summary, os.path.join(workdir, ACCURACY_PLOT), title)
  unit = 'pixels' if results.headline(first) == 'test_miou' else 'examples'
  results.plot_class_counts(summary, os.path.join(workdir, CLASS_COUNTS_PLOT),
                            f"{first['dataset']}: queried {unit} per true class "
                            '(all rounds, mean over seeds)')
  if any('excluded_queried_mean' in s for s in summary.values()):
    results.plot_excluded(summary, os.path.join(workdir, EXCLUDED_PLOT),
                          f"{first['dataset']}: queried {unit} of the classes missing from the "
                          f"initial pool {first['excluded_classes']}", unit)
  return summary
