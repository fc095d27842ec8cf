r"""Command line: run (or resume) an active-learning experiment.

  python -m jal.main --config configs/pal_cifar10.py:runlocal --workdir runs/x \
      [--config.strategy.name=random] [--overwrite] [--recover]

The logic lives in `jal.experiment`, which notebooks import directly. Every
mistake ends in one line (`jal.cli`).
"""

from __future__ import annotations

import os

from absl import flags
from ml_collections import config_flags

from jal import cli
from jal.errors import JalError


def default_workdir(config_arg: str, config) -> str:
  path, _, variant = config_arg.partition(':')
  name = os.path.splitext(os.path.basename(path))[0]
  if variant:
    name += '-' + variant.replace(',', '-').replace('=', '')
  return os.path.join('runs', name, f'{config.strategy.name}-seed{config.seed}')


def main(argv):
  if len(argv) > 1:
    raise JalError(f"unexpected arguments {' '.join(argv[1:])}; every option is a flag "
                   '(--name=value), e.g. --workdir runs/x or --config.seed=1')
  if cli.CONFIG.value is None:
    raise JalError('--config is required, e.g. --config configs/digits.py')
  cli.set_up()
  from jal import experiment  # after flag parsing: keeps --help fast
  config = cli.CONFIG.value
  workdir = cli.WORKDIR.value or default_workdir(
      config_flags.get_config_filename(flags.FLAGS['config']), config)
  records = experiment.run(config, workdir, overwrite=cli.OVERWRITE.value,
                           recover=cli.RECOVER.value)
  last = records[-1] if records else None
  if last:
    print(f"done: {len(records)} rounds in {workdir}; last round {last['num_labeled']} labeled, "
          f"test accuracy {last['test_accuracy']:.4f}")


if __name__ == '__main__':
  cli.main(main)
