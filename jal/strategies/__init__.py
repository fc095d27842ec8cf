"""Query strategies, found by import path: ``jal.strategies.<name>.Strategy``.

Adding one is adding a module here with a ``Strategy`` class (see `base`);
modules whose names start with an underscore hold code shared by several.
"""

from __future__ import annotations

import importlib
import pkgutil

from jal.errors import JalError


def available() -> list[str]:
  """The names ``config.strategy.name`` accepts."""
  import jal.strategies as package
  return sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                if m.name != 'base' and not m.name.startswith('_'))


def get(name: str):
  """The ``Strategy`` class of ``jal.strategies.<name>``.

  Raises:
    JalError: if there is no such strategy.
  """
  if name not in available():
    raise JalError(f"unknown strategy '{name}'; config.strategy.name must be one of "
                   f"{', '.join(available())}")
  return importlib.import_module(f'jal.strategies.{name}').Strategy
