r"""Command line: run (or resume) an active-learning experiment.

  python -m jal.main --config configs/pal_cifar10.py:runlocal --workdir runs/x \
      [--config.strategy.name=random] [--overwrite]

The logic lives in `jal.experiment`, which notebooks import directly.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

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


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO chatter of orbax (a line per checkpoint operation)."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def _use_compilation_cache() -> None:
  """Keeps compiled XLA programs on disk, so a resumed or repeated run starts fast.

  Under ``$JAL_CACHE_DIR/xla`` (default ``~/.cache/jal/xla``) unless the user
  set ``JAX_COMPILATION_CACHE_DIR``.
  """
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return
  import jax
  from jal.data import cache
  jax.config.update('jax_compilation_cache_dir', os.path.join(cache.default_cache_dir(), 'xla'))


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None:
    raise app.UsageError('--config is required, e.g. --config configs/digits.py')
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  _use_compilation_cache()
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
  app.run(main)
