"""Query strategies, found by import path: ``jal.strategies.<name>.Strategy``.

A strategy is one module here (names with a leading underscore hold code
several strategies share). The module owns everything about it:

- ``Strategy``: the class (`jal.strategies.base`);
- ``default_config()`` (optional): its hyperparameters with their defaults,
  which every experiment config carries under ``config.strategy.<module>``,
  so ``--config.strategy.name=<module>`` picks it on any config and
  ``--config.strategy.<module>.<key>=...`` tunes it;
- ``ALIASES`` (optional): other names for variants of the family, each
  fixing some of its keys (``bald`` is ``mc_dropout`` with ``score='bald'``).

Adding a strategy is adding its module.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import jax
import ml_collections

from jal.data import PoolData
from jal.errors import JalError
from jal.task import Task


def _modules() -> dict[str, ModuleType]:
  import jal.strategies as package
  names = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                 if m.name != 'base' and not m.name.startswith('_'))
  return {name: importlib.import_module(f'jal.strategies.{name}') for name in names}


def aliases() -> dict[str, tuple[str, dict]]:
  """Every alias: name -> (the module it is a variant of, the keys it fixes)."""
  out = {}
  for family, module in _modules().items():
    for alias, fixed in getattr(module, 'ALIASES', {}).items():
      out[alias] = (family, dict(fixed))
  return out


def available() -> list[str]:
  """The names ``config.strategy.name`` accepts: every module and every alias."""
  return sorted(set(_modules()) | set(aliases()))


def resolve(name: str) -> tuple[str, dict]:
  """``(module name, the keys the name fixes)`` of a strategy name.

  Raises:
    JalError: if there is no such strategy.
  """
  if name in _modules():
    return name, {}
  known = aliases()
  if name not in known:
    raise JalError(f"unknown strategy '{name}'; config.strategy.name must be one of "
                   f"{', '.join(available())}")
  return known[name]


def default_config(name: str = 'random') -> ml_collections.ConfigDict:
  """``config.strategy``: the chosen ``name``, how a batch is drawn from a score, and every
  strategy's own section.

  ``sampling`` (``'top_k'``, ``'power'``, ``'softmax'``, ``'softrank'``) and
  ``sampling_beta``: a strategy that ranks candidates by one score takes its
  top ``budget`` or draws the batch favouring high scores (Kirsch et al.,
  TMLR 2023; `jal.strategies.base.Strategy.select_by_score`).

  Args:
    name: the strategy the config runs (any of `available`).
  """
  cfg = ml_collections.ConfigDict({'name': name, 'sampling': 'top_k', 'sampling_beta': 1.0})
  for family, module in _modules().items():
    if hasattr(module, 'default_config'):
      cfg[family] = module.default_config()
  return cfg


def settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The chosen strategy's section of ``config.strategy``, with its alias's keys fixed.

  Raises:
    JalError: an unknown strategy, or a key the alias fixes set to another
      value in the config (e.g. ``name=bald`` with ``mc_dropout.score=dbal``).
  """
  name = config.strategy.name
  family, fixed = resolve(name)
  module = _modules()[family]
  section = config.strategy.get(family)
  out = ml_collections.ConfigDict(section.to_dict() if section is not None else {})
  defaults = module.default_config() if hasattr(module, 'default_config') else {}
  for key, value in fixed.items():
    current = out.get(key)
    if current != value and current != defaults.get(key):
      raise JalError(f"config.strategy.name='{name}' is {family} with {key}={value!r}, but "
                     f'config.strategy.{family}.{key}={current!r}; use '
                     f'--config.strategy.name={family} to choose {key} yourself')
    out[key] = value
  return out


def get(name: str):
  """The ``Strategy`` class of a strategy name (module or alias).

  Raises:
    JalError: if there is no such strategy.
  """
  return _modules()[resolve(name)[0]].Strategy


def build(config: ml_collections.ConfigDict, data: PoolData, task: Task,
          mesh: jax.sharding.Mesh):
  """The strategy of ``config.strategy.name``, built (its compiled steps ready).

  Raises:
    JalError: an unknown strategy or a bad setting of it.
  """
  return get(config.strategy.name)(config, data, task, mesh, settings(config))
