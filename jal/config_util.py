"""Helpers for config files: variant parsing and the keys every config has.

Config files follow big_vision: ``get_config(arg=None)`` returns an
``ml_collections.ConfigDict``; variants come after a colon
(``--config configs/pal_cifar10.py:runlocal``), several separated by commas,
``key=value`` pairs allowed; single keys override with ``--config.a.b=value``.
"""

from __future__ import annotations

import ml_collections

from jal.errors import JalError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'runlocal,seed=3'`` into ``{'runlocal': True, 'seed': 3}`` over ``defaults``.

  Raises:
    JalError: for a variant the config does not define.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or '').split(',')):
    name, _, value = item.partition('=')
    if name not in defaults:
      raise JalError(f"unknown config variant '{name}'; this config accepts "
                     f"{', '.join(sorted(defaults))}")
    kind = type(defaults[name])
    if not value:
      out[name] = True
    elif kind is bool:
      out[name] = value.lower() in ('1', 'true', 'yes')
    else:
      out[name] = kind(value)
  return out


def train_config(**overrides) -> ml_collections.ConfigDict:
  """Training hyperparameters of a network (task model or auxiliary)."""
  cfg = ml_collections.ConfigDict(dict(
      optimizer='sgd', learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_schedule='constant', lr_milestones=(), lr_decay=0.1,
      epochs=100, batch_size=64, crop_pad=4, flip=True))
  cfg.update(overrides)
  return cfg


def base_config() -> ml_collections.ConfigDict:
  """Every key an experiment config has, with neutral defaults."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = ml_collections.ConfigDict(dict(
      name='digits', image_size=ml_collections.FieldReference(None, field_type=int),
      path=ml_collections.FieldReference(None, field_type=str),
      max_train=ml_collections.FieldReference(None, field_type=int),
      max_test=ml_collections.FieldReference(None, field_type=int), split_seed=0))
  # Sizes are counts, or fractions of the train split when below 1.
  config.initial_pool = ml_collections.ConfigDict(dict(size=0.1, exclude_classes=()))
  config.budget = 0.05
  config.num_rounds = 5
  config.oracle = ml_collections.ConfigDict(dict(noise_rate=0.0))
  config.model = ml_collections.ConfigDict(dict(
      name='small_cnn', width=ml_collections.FieldReference(None, field_type=int)))
  config.train = train_config()
  config.eval_batch_size = 500
  config.strategy = ml_collections.ConfigDict(dict(name='random'))
  return config


def pal_strategy(**overrides) -> ml_collections.ConfigDict:
  """PAL's hyperparameters (paper 000): lambda1 = lambda2 = 1, ResNet-18 scorer."""
  cfg = ml_collections.ConfigDict(dict(
      name='pal', lambda1=1.0, lambda2=1.0, num_subqueries=5,
      scoring_model=dict(name='resnet18', width=ml_collections.FieldReference(None, field_type=int)),
      scoring_train=train_config(learning_rate=0.01, lr_schedule='constant'),
      finetune=train_config(learning_rate=0.01, epochs=5, lr_schedule='constant')))
  cfg.update(overrides)
  return cfg
