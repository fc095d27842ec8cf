"""The keys of a training config, with neutral defaults.

A training config says how one network learns: its optimiser and
learning-rate schedule (`jal.train.optim`), epochs, batch size and
augmentation (`jal.train.Trainer`). Experiment configs (``configs/``) set
the values of their protocol on top of these.
"""

from __future__ import annotations

import math

import ml_collections

from jal.errors import JalError, check_choice


def train_config(**overrides) -> ml_collections.ConfigDict:
  """How a network (task model or auxiliary) is trained.

  Keys: ``optimizer`` (``'sgd'``, ``'adam'``), ``learning_rate``,
  ``momentum`` (sgd), ``weight_decay`` (coupled L2, as PyTorch's),
  ``lr_schedule`` (``'constant'``, ``'multistep'``, ``'cosine'``),
  ``lr_milestones`` (fractions of the epochs), ``lr_decay``, ``epochs``,
  ``batch_size``, ``crop_pad`` (pixels of the random crop's padding),
  ``flip`` (random horizontal flips where the dataset allows them),
  ``compiled_epochs`` (None: `jal.platform.compiled_loops` decides).

  Args:
    **overrides: keys to set.

  Returns:
    A new ``ConfigDict``.
  """
  cfg = ml_collections.ConfigDict(dict(
      optimizer='sgd', learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_schedule='constant', lr_milestones=(), lr_decay=0.1,
      epochs=100, batch_size=64, crop_pad=4, flip=True, compiled_epochs=None))
  cfg.update(overrides)
  return cfg


def optimizer_config(optimizer: str, learning_rate: float,
                     **overrides) -> ml_collections.ConfigDict:
  """The optimiser of a network trained alongside the task model, over its epochs.

  ``lr_schedule`` (``'constant'``, ``'multistep'``, ``'cosine'``) is then in
  the task model's epochs (`jal.train.optim.learning_rate`).
  """
  cfg = ml_collections.ConfigDict(dict(optimizer=optimizer, learning_rate=learning_rate,
                                       weight_decay=0.0, momentum=0.0, lr_schedule='constant',
                                       lr_milestones=(), lr_decay=0.1))
  cfg.update(overrides)
  return cfg


OPTIMIZERS = ('sgd', 'adam')
SCHEDULES = ('constant', 'multistep', 'cosine')


def _number(cfg, name: str, key: str, low: float, high: float = float('inf'), *,
            low_open: bool = False, integer: bool = False) -> None:
  value = cfg[name]
  ok = isinstance(value, (int, float)) and not isinstance(value, bool)
  ok = ok and math.isfinite(value) and (value > low if low_open else value >= low)
  ok = ok and value <= high and (not integer or value == int(value))
  if not ok:
    kind = 'an integer' if integer else 'a number'
    bound = f'above {low:g}' if low_open else f'at least {low:g}'
    top = f' and at most {high:g}' if math.isfinite(high) else ''
    raise JalError(f'{key}.{name}={value!r} must be {kind} {bound}{top}')


def check_train_config(cfg: ml_collections.ConfigDict, key: str) -> None:
  """Refuses a training (or optimiser) config that cannot train, before any training.

  Args:
    cfg: a `train_config` or `optimizer_config`.
    key: where it sits in the experiment config, e.g. ``'config.train'``.

  Raises:
    JalError: an unknown optimiser or schedule, a learning rate that is not
      positive and finite (NaN included), momentum outside [0, 1), a negative
      weight decay, milestones outside (0, 1], a decay that is not positive,
      epochs below 0 or a batch size below 1, naming the key.
  """
  check_choice(cfg.optimizer, OPTIMIZERS, f'{key}.optimizer')
  check_choice(cfg.get('lr_schedule', 'constant'), SCHEDULES, f'{key}.lr_schedule')
  _number(cfg, 'learning_rate', key, 0.0, low_open=True)
  if 'weight_decay' in cfg:
    _number(cfg, 'weight_decay', key, 0.0)
  if 'momentum' in cfg:
    _number(cfg, 'momentum', key, 0.0, 0.999)
  if 'lr_decay' in cfg:
    _number(cfg, 'lr_decay', key, 0.0, low_open=True)
  milestones = cfg.get('lr_milestones', ())
  if not all(isinstance(m, (int, float)) and 0 < m <= 1 for m in milestones):
    raise JalError(f'{key}.lr_milestones={tuple(milestones)} must be fractions of the epochs '
                   'in (0, 1], e.g. (0.8,) for "x0.1 at epoch 160 of 200"')
  if 'epochs' in cfg:
    _number(cfg, 'epochs', key, 0, integer=True)
  if 'batch_size' in cfg:
    _number(cfg, 'batch_size', key, 1, integer=True)
  if 'crop_pad' in cfg:
    _number(cfg, 'crop_pad', key, 0, integer=True)


def train_configs(config: ml_collections.ConfigDict,
                  key: str = 'config') -> list[tuple[str, ml_collections.ConfigDict]]:
  """Every training or optimiser config inside ``config``, with its key.

  One is any section with ``optimizer`` and ``learning_rate`` keys: the
  task model's, and those of every scoring network, VAE or discriminator of
  every strategy and initial pool.
  """
  out = []
  if 'optimizer' in config and 'learning_rate' in config:
    out.append((key, config))
  for name, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.extend(train_configs(value, f'{key}.{name}'))
  return out
