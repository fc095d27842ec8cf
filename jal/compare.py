r"""Command line: compare strategies over several seeds on one experiment config.

  python -m jal.compare --config configs/pal_cifar10.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/compare \
      [--initial_pools=random,kmeans] [--vectorize_seeds=auto|true|false] \
      [--config.key=value ...] [--overwrite] [--recover] [--summary_only] \
      [--settings=runs/other_compare,...] [--saturation=0.99]

Each (strategy, seed) runs in ``<workdir>/<strategy>/seed<seed>`` and resumes
on its own; every strategy of a seed starts from the same initial pool. The
summary (``summary.md``, ``summary.json``, ``accuracy.png`` with std bands,
``class_counts.png``, ``penalty_matrix.png``) is written to ``--workdir``:
mean ± std per round, the area under the curve and whether each strategy
beats random on it (a paired t-test over seeds), and the pairwise penalty
matrix (Ash et al. 2020). ``--settings`` names other comparisons (other
datasets, pool sizes, budgets; the same strategies and seeds) whose penalty
matrices add to this one's. See `jal.comparison`. Every mistake ends in one
line (`jal.cli`).
"""

from __future__ import annotations

import os

from absl import flags

from jal import cli
from jal.errors import JalError

_STRATEGIES = flags.DEFINE_list('strategies', ['random', 'entropy'], 'Strategies to compare.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Trial seeds.')
_INITIAL_POOLS = flags.DEFINE_list(
    'initial_pools', [], 'Also compare these initial-pool strategies (jal.initial_pools): '
    'every (initial pool, strategy) pair is an arm, in <workdir>/<pool>/<strategy>/seed<k>.')
_VECTORIZE = flags.DEFINE_enum(
    'vectorize_seeds', 'auto', ['auto', 'true', 'false'],
    'Train the seeds of a strategy together, vmapped in one program (auto: on GPU/TPU, not on '
    'CPU, where vmapped convolutions are slow).')
_SUMMARY_ONLY = flags.DEFINE_bool('summary_only', False, 'Only summarise the runs already there.')
_SETTINGS = flags.DEFINE_list(
    'settings', [], 'Other comparisons (directories of jal.compare runs of the same strategies '
    'and seeds on other datasets, pool sizes or budgets): their pairwise penalty matrices add '
    "to this one's, each setting contributing at most 1 to an entry (Ash et al. 2020).")
_SATURATION = flags.DEFINE_float(
    'saturation', None, "Penalty matrix: compare only the labeled-set sizes before random's "
    'mean reaches this fraction of its final value (Ash et al. 2020 used 0.99); unset: every '
    'size (Lüth et al. 2023).')


def parse_seeds(values: list[str]) -> list[int]:
  """``--seeds`` as integers.

  Raises:
    JalError: a seed that is not an integer.
  """
  try:
    return [int(s) for s in values]
  except ValueError:
    raise JalError(f'--seeds={",".join(values)} must be integers, e.g. --seeds=0,1,2') from None


def main(argv):
  if len(argv) > 1:
    raise JalError(f"unexpected arguments {' '.join(argv[1:])}; every option is a flag "
                   '(--name=value), e.g. --seeds=0,1,2')
  workdir = cli.WORKDIR.value
  if not workdir:
    raise JalError('--workdir is required: the comparison\'s directory, e.g. '
                   '--workdir runs/compare')
  if cli.CONFIG.value is None and not _SUMMARY_ONLY.value:
    raise JalError('--config is required (unless --summary_only), e.g. '
                   '--config configs/digits.py')
  seeds = parse_seeds(_SEEDS.value)
  cli.set_up()
  from jal import comparison  # after flag parsing: keeps --help fast
  if _SUMMARY_ONLY.value:
    comparison.write_summary(workdir, comparison.arms(_STRATEGIES.value, _INITIAL_POOLS.value),
                             seeds, settings=_SETTINGS.value, saturation=_SATURATION.value)
  else:
    comparison.run_comparison(cli.CONFIG.value, workdir, _STRATEGIES.value, seeds,
                              overwrite=cli.OVERWRITE.value, initial_pools=_INITIAL_POOLS.value,
                              vectorize_seeds={'auto': None, 'true': True,
                                               'false': False}[_VECTORIZE.value],
                              recover=cli.RECOVER.value, settings=_SETTINGS.value,
                              saturation=_SATURATION.value)
  with open(os.path.join(workdir, comparison.SUMMARY_TABLE)) as f:
    print(f.read())


if __name__ == '__main__':
  cli.main(main)
