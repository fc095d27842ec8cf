r"""Command line: compare strategies over several seeds on one experiment config.

  python -m jal.compare --config configs/pal_cifar10.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/compare \
      [--initial_pools=random,kmeans] [--vectorize_seeds=auto|true|false] \
      [--config.key=value ...] [--overwrite] [--summary_only]

Each (strategy, seed) runs in ``<workdir>/<strategy>/seed<seed>`` and resumes
on its own; every strategy of a seed starts from the same initial pool. The
summary (``summary.md``, ``summary.json``, ``accuracy.png`` with std bands,
``class_counts.png``) is written to ``--workdir``. See `jal.comparison`.
"""

from __future__ import annotations

import sys

from absl import app, flags
from ml_collections import config_flags

from jal import cli
from jal.errors import JalError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:variants].',
                                          lock_config=True)
_STRATEGIES = flags.DEFINE_list('strategies', ['random', 'entropy'], 'Strategies to compare.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Trial seeds.')
_INITIAL_POOLS = flags.DEFINE_list(
    'initial_pools', [], 'Also compare these initial-pool strategies (jal.initial_pools): '
    'every (initial pool, strategy) pair is an arm, in <workdir>/<pool>/<strategy>/seed<k>.')
_WORKDIR = flags.DEFINE_string('workdir', None, 'The comparison directory (required).')
_OVERWRITE = flags.DEFINE_bool('overwrite', False, 'Redo runs already there instead of '
                               'resuming them.')
_VECTORIZE = flags.DEFINE_enum(
    'vectorize_seeds', 'auto', ['auto', 'true', 'false'],
    'Train the seeds of a strategy together, vmapped in one program (auto: on GPU/TPU, not on '
    'CPU, where vmapped convolutions are slow).')
_SUMMARY_ONLY = flags.DEFINE_bool('summary_only', False, 'Only summarise the runs already there.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if not _WORKDIR.value or (_CONFIG.value is None and not _SUMMARY_ONLY.value):
    raise app.UsageError('--workdir is required, and --config unless --summary_only')
  cli.set_up()
  from jal import comparison  # after flag parsing: keeps --help fast
  try:
    seeds = [int(s) for s in _SEEDS.value]
  except ValueError:
    print(f'jal: error: --seeds={",".join(_SEEDS.value)} must be integers', file=sys.stderr)
    sys.exit(2)
  try:
    if _SUMMARY_ONLY.value:
      comparison.write_summary(_WORKDIR.value,
                               comparison.arms(_STRATEGIES.value, _INITIAL_POOLS.value), seeds)
    else:
      comparison.run_comparison(_CONFIG.value, _WORKDIR.value, _STRATEGIES.value, seeds,
                                overwrite=_OVERWRITE.value, initial_pools=_INITIAL_POOLS.value,
                                vectorize_seeds={'auto': None, 'true': True,
                                                 'false': False}[_VECTORIZE.value])
  except JalError as e:
    print(f'jal: error: {e}', file=sys.stderr)
    sys.exit(2)
  with open(f'{_WORKDIR.value}/{comparison.SUMMARY_TABLE}') as f:
    print(f.read())


if __name__ == '__main__':
  cli.make_configs_importable(sys.argv)
  app.run(main)
