"""Set-up shared by the command lines (`jal.main`, `jal.compare`)."""

from __future__ import annotations

import logging as std_logging
import os

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


def set_up() -> None:
  """INFO logging without orbax's chatter, and the on-disk compilation cache."""
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  use_compilation_cache()
