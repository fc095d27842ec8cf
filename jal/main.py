r"""Command line: run (or resume) an active-learning experiment.

  python -m jal.main --config configs/pal_cifar10.py:runlocal --workdir runs/x \
      [--config.strategy.name=random] [--overwrite]

The logic lives in `jal.experiment`, which notebooks import directly.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags
from ml_collections import config_flags

from jal import cli
from jal.errors import JalError

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Experiment config file[:variants].',
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None, 'Work directory; default '
                               'runs/<config>[-<variant>]/<strategy>-seed<seed>.')
_OVERWRITE = flags.DEFINE_bool('overwrite', False,
                               'Delete a run already in --workdir instead of resuming it.')


def default_workdir(config_arg: str, config) -> str:
  path, _, variant = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  if variant:
    name += '-' + variant.replace(',', '-').replace('=', '')
  return os.path.join('runs', name, f'{config.strategy.name}-seed{config.seed}')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None:
    raise app.UsageError('--config is required, e.g. --config configs/digits.py')
  cli.set_up()
  from jal import experiment  # after flag parsing: keeps --help fast
  config = _CONFIG.value
  workdir = _WORKDIR.value or default_workdir(
      config_flags.get_config_filename(flags.FLAGS['config']), config)
  try:
    records = experiment.run(config, workdir, overwrite=_OVERWRITE.value)
  except JalError as e:
    print(f'jal: error: {e}', file=sys.stderr)
    sys.exit(2)
  last = records[-1] if records else None
  if last:
    print(f"done: {len(records)} rounds in {workdir}; last round {last['num_labeled']} labeled, "
          f"test accuracy {last['test_accuracy']:.4f}")


if __name__ == '__main__':
  cli.make_configs_importable(sys.argv)
  app.run(main)
