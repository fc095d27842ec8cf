"""The keys of a training config, with neutral defaults.

A training config says how one network learns: its optimiser and
learning-rate schedule (`jal.train.optim`), epochs, batch size and
augmentation (`jal.train.Trainer`). Experiment configs (``configs/``) set
the values of their protocol on top of these.
"""

from __future__ import annotations

import ml_collections


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
