r"""Command line: run (or resume) an active-learning experiment.

  python -m jal.main --config configs/pal_cifar10.py:runlocal --workdir runs/x \
      [--config.strategy.name=random] [--overwrite] [--recover] [--labels FILE]

With ``config.oracle.name='human'`` (configs/label_images.py) the run stops
after each query, naming the files a person answers; ``--labels FILE``
imports the answers and goes on (`jal.human`).

The logic lives in `jal.experiment`, which notebooks import directly. Every
mistake ends in one line (`jal.cli`).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence

from absl import flags
from ml_collections import config_flags

from jal import cli
from jal.errors import JalError


LABELS = flags.DEFINE_string(
    'labels', None, "a label file answering the query that waits for a person (config.oracle."
    "name='human'): the filled query.csv, a Label Studio JSON or JSON-MIN export, a CVAT "
    'ImageNet zip, or a folder of <class>/<image>')


def continue_command(argv: Sequence[str]) -> str:
  """The command line that continues this run, as typed, without --labels or --overwrite."""
  kept, skip = [], False
  for arg in argv[1:]:
    if skip:
      skip = False
      continue
    name = arg.split('=', 1)[0]
    if name in ('--labels', '-labels'):
      skip = '=' not in arg
      continue
    if name in ('--overwrite', '--overwrite=true', '--recover'):
      continue
    kept.append(arg)
  return ' '.join(['python -m jal.main'] + [shlex.quote(a) for a in kept])


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
                           recover=cli.RECOVER.value, labels=LABELS.value,
                           command=continue_command(sys.argv))
  last = records[-1] if records else None
  if last and len(records) == config.num_rounds:
    from jal import results  # pylint: disable=g-import-not-at-top
    key = results.headline(last)
    value = last[key]
    print(f"done: {len(records)} rounds in {workdir}; last round {last['num_labeled']} labeled, "
          f"{results.METRIC_NAMES.get(key, key)} {'n/a' if value is None else f'{value:.4f}'}")


if __name__ == '__main__':
  cli.main(main)
