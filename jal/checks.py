"""Every check of an experiment config that needs no training.

`jal.experiment.set_up` runs them (and the strategies' own, as they are
built) before the work directory is touched, so a refused command leaves it
as it was and the corrected command runs in the same place. Each refusal is
one line naming the key, what is wrong, and, where there is arithmetic (sizes,
rounds), the arithmetic.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jal import data, initial_pools, pool as pool_lib, stopping
from jal.errors import JalError
from jal.train.config import check_train_config, train_configs

# Every random stream derives from the seed as two 32-bit words (`jal.rng`);
# seeds are the 32-bit ones every other library also accepts.
MAX_SEED = 2**32


def check_seed(seed, key: str = 'config.seed') -> int:
  """The seed as an int.

  Raises:
    JalError: not an integer in ``[0, 2**32)``.
  """
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not (
      0 <= seed < MAX_SEED):
    raise JalError(f'{key}={seed!r} must be an integer from 0 to {MAX_SEED - 1}')
  return int(seed)


def _positive_int(value, key: str, hint: str = '') -> None:
  if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
    raise JalError(f'{key}={value!r} must be at least 1 (an integer{hint})')


def check_rounds(initial: int, budget: int, num_rounds: int, num_train: int) -> None:
  """Refuses a protocol whose rounds need more labels than the pool has.

  Round ``r`` trains on ``initial + r * budget`` labels; the last round is
  ``num_rounds - 1``.

  Raises:
    JalError: with the arithmetic, and the most rounds or the largest
      budget that fit.
  """
  if num_rounds < 2:
    return
  total = initial + (num_rounds - 1) * budget
  if total <= num_train:
    return
  left = num_train - initial
  fit = 1 + left // budget
  raise JalError(f'config.initial_pool.size={initial} + config.budget={budget} x '
                 f'{num_rounds - 1} more rounds = {total:,} labels, more than the {num_train:,} '
                 f'train examples; lower config.num_rounds to {fit} or config.budget to '
                 f'{left // (num_rounds - 1)}')


def check_config(config: ml_collections.ConfigDict, dataset: data.Dataset,
                 whole_images: bool = True) -> tuple[int, int]:
  """Checks the protocol's sizes and every setting that needs no training.

  Args:
    config: the experiment config.
    dataset: its dataset, as loaded (the sizes; the true labels of the
      classes an initial pool may exclude).
    whole_images: whether excluded classes keep whole images out of the
      initial pool (False: segmentation's ``biased_pool='annotations'``,
      where any image is eligible).

  Returns:
    ``(initial_size, budget)`` as counts.

  Raises:
    JalError: naming the offending key and how to fix it.
  """
  check_seed(config.seed)
  train_labels, num_classes = dataset.train_labels, dataset.num_classes
  n = int(train_labels.shape[0])
  _positive_int(config.num_rounds, 'config.num_rounds')
  initial = pool_lib.resolve_count(config.initial_pool.size, n, 'config.initial_pool.size')
  budget = pool_lib.resolve_count(config.budget, n, 'config.budget')
  if config.num_rounds > 1 and budget > n - initial:
    raise JalError(f'config.budget={budget} is larger than the {n - initial} unlabeled examples '
                   'left after the initial pool; lower config.budget or config.initial_pool.size')
  check_rounds(initial, budget, config.num_rounds, n)
  exclude = tuple(config.initial_pool.exclude_classes)
  bad = [c for c in exclude if not 0 <= c < num_classes]
  if bad:
    raise JalError(f'config.initial_pool.exclude_classes has {bad}, not classes of '
                   f'{dataset.name} (0..{num_classes - 1})')
  holds = np.isin(train_labels, np.asarray(exclude, np.int64))
  if not whole_images:
    holds = np.zeros(n, bool)
  elif holds.ndim > 1:  # masks: an image is eligible when no pixel is of an excluded class
    holds = holds.reshape(n, -1).any(axis=1)
  eligible = int(np.sum(~holds))
  if initial > eligible:
    what = 'images without a pixel of' if train_labels.ndim > 1 else 'examples outside'
    raise JalError(f'config.initial_pool.size={initial} is more than the {eligible} train '
                   f'{what} config.initial_pool.exclude_classes={list(exclude)}; lower '
                   'the size or exclude fewer classes')
  subset = config.get('candidate_subset')
  if subset is not None and not budget <= subset:
    raise JalError(f'config.candidate_subset={subset} is smaller than the budget of {budget}; '
                   'set it to a multiple of the budget (the SCAL and TA-VAAL papers use 10x) '
                   'or to None')
  initial_pools.check_settings(config.initial_pool)
  stopping.check_config(config)
  _positive_int(config.evaluation.ece_bins, 'config.evaluation.ece_bins', '; SCAL uses 15')
  _positive_int(config.eval_batch_size, 'config.eval_batch_size')
  for key in ('epochs', 'batch_size'):
    _positive_int(config.train[key], f'config.train.{key}')
  for key, cfg in train_configs(config):
    check_train_config(cfg, key)
  return initial, budget
