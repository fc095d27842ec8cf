"""Set-up shared by the command lines (`jal.main`, `jal.compare`)."""

from __future__ import annotations

import logging as std_logging
import os
import sys
from typing import Sequence

from absl import logging


class _QuietLibraries(std_logging.Filter):
  """Drops the INFO chatter of orbax (a line per checkpoint operation)."""

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or '/orbax/' not in record.pathname


def use_compilation_cache() -> None:
  """Keeps compiled XLA programs on disk, so a resumed or repeated run starts fast.

  Under ``$JAL_CACHE_DIR/xla`` (default ``~/.cache/jal/xla``) unless the user
  set ``JAX_COMPILATION_CACHE_DIR``.
  """
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return
  import jax
  from jal.data import cache
  jax.config.update('jax_compilation_cache_dir', os.path.join(cache.default_cache_dir(), 'xla'))


def make_configs_importable(argv: Sequence[str]) -> None:
  """Lets a config file ``<root>/configs/x.py`` import ``configs.common`` from any directory.

  Config files import their shared pieces as ``from configs import common``,
  as the Flax examples do; that resolves from the repository root. For a
  ``--config`` inside a ``configs`` package, its parent goes on ``sys.path``.
  """
  for i, arg in enumerate(argv):
    if arg == '--config' and i + 1 < len(argv):
      value = argv[i + 1]
    elif arg.startswith('--config='):
      value = arg.split('=', 1)[1]
    else:
      continue
    folder = os.path.dirname(os.path.abspath(value.split(':', 1)[0]))
    if os.path.exists(os.path.join(folder, '__init__.py')):
      root = os.path.dirname(folder)
      if root not in sys.path:
        sys.path.insert(0, root)


def set_up() -> None:
  """INFO logging without orbax's chatter, and the on-disk compilation cache."""
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  use_compilation_cache()
