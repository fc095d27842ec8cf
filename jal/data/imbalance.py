"""Class-imbalanced train splits: the imbalance scenarios of the papers.

Each construction turns the per-class counts of a split into per-class target
counts; `subset_by_counts` then keeps a uniformly random subset of that size of
every class, and `imbalance` applies the result to a `Dataset`'s train split
(the test split stays balanced unless ``imbalance_test``).

* ``'step'``: TA-VAAL (Kim et al. 2021, Sec. 4.3): "Modified CIFAR10's were
  constructed by randomly reducing the number of samples that were associated
  with the first 5 classes. [...] Imbalance ratios of 10 and 100 were used."
* ``'random_ratios'``: MAL (Ebrahimi et al. 2020, Sec. 4.1, CIFAR100-Imbalanced):
  "keeping random ratios from each class [...] We use imbalance ratios of
  {10^-2, 10^-1.5, 10^-1, 10^-0.5, 10^0}. We use each ratio for 20 randomly
  chosen classes without replacement."
* ``'long_tail'``: Cui et al., "Class-Balanced Loss Based on Effective Number
  of Samples" (CVPR 2019, Sec. 6.1, long-tailed CIFAR), which Chandra et al. (2021)
  (Sec. 4.1) follows "to simulate a long-tailed distribution of classes":
  class ``i`` keeps ``n_i * mu^i`` with ``mu^(K-1) = 1 / imbalance_factor``.

Where the papers do not say how a fractional count is rounded, the choice is
stated in the function's docstring.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import ml_collections
import numpy as np

from jal.data.dataset import Dataset, channel_stats
from jal.errors import JalError

KINDS = ('step', 'random_ratios', 'long_tail')

# MAL's (Ebrahimi et al. 2020, Sec. 4.1) per-class keep ratios, 10^-2 ... 10^0.
MAL_RATIOS = (1e-2, 10**-1.5, 1e-1, 10**-0.5, 1.0)

# Relative slack before rounding, so that a product that is an integer up to
# floating-point error (5000 * 0.01**(9/9) = 50) is not floored to one less.
_TOL = 1e-9

_KEY = 'config.dataset.imbalance'


def imbalance_config() -> ml_collections.ConfigDict:
  """The keys of ``config.dataset.imbalance``, with defaults (the balanced data).

  Keys:
    kind: None (the default) keeps the dataset balanced as loaded; ``'step'``
      (TA-VAAL CIFAR-10), ``'random_ratios'`` (MAL CIFAR-100) or
      ``'long_tail'`` (Cui et al. exponential profile) imbalances it.
    factor: for ``'step'``, how many times fewer examples the listed classes
      keep (TA-VAAL uses 10 and 100); for ``'long_tail'``, the largest class
      over the smallest (the imbalance factor). At least 1.
    classes: for ``'step'``, the reduced classes (TA-VAAL: the first five).
    ratios: for ``'random_ratios'``, the fractions of a class that are kept,
      each in (0, 1] (MAL: 10^-2, 10^-1.5, 10^-1, 10^-0.5, 1).
    classes_per_ratio: for ``'random_ratios'``, how many randomly chosen classes
      get each ratio (MAL: 20); ``len(ratios) * classes_per_ratio`` must equal
      the number of classes.
    imbalance_test: False (the papers' protocol) keeps the test split as
      loaded; True applies the same per-class fractions to the test split too.
  """
  return ml_collections.ConfigDict(dict(
      kind=ml_collections.FieldReference(None, field_type=str),
      factor=10.0,
      classes=(0, 1, 2, 3, 4),
      ratios=MAL_RATIOS,
      classes_per_ratio=20,
      imbalance_test=False))


def class_counts_step(counts: np.ndarray, classes: Sequence[int], factor: float) -> np.ndarray:
  """Per-class targets of TA-VAAL's step imbalance (Kim et al. 2021, Sec. 4.3).

  The listed classes keep ``floor(n_c / factor)`` examples, at least 1 (and at
  most ``n_c``); the other classes keep all ``n_c``. The paper says only that
  the first five classes are "randomly reduc[ed]" by an "imbalance ratio" of 10
  or 100 and that at x100 "some classes [had] 50 total images" (5000 / 100),
  so the rounding (floor, at least 1) is jal's choice; it is exact on CIFAR-10.

  Args:
    counts: int ``[K]``, examples per class.
    classes: distinct class indices in ``[0, K)`` to reduce.
    factor: the imbalance ratio, at least 1.

  Returns:
    int64 ``[K]``, the number of examples each class keeps.

  Raises:
    JalError: ``factor`` below 1 or not a number; a class out of range or
      repeated; bad ``counts``.
  """
  counts = _check_counts(counts)
  factor = _check_factor(factor)
  classes = _check_classes(classes, counts.size)
  fraction = np.ones(counts.size)
  fraction[list(classes)] = 1.0 / factor
  return _floor_at_least_one(counts, fraction)


def random_ratio_assignment(num_classes: int, ratios: Sequence[float], classes_per_ratio: int,
                            rng: np.random.Generator) -> np.ndarray:
  """Each class's keep ratio in MAL's CIFAR100-Imbalanced (Ebrahimi et al. 2020, Sec. 4.1).

  "We use each ratio for 20 randomly chosen classes without replacement": a
  random permutation of the classes is cut into ``len(ratios)`` consecutive
  groups of ``classes_per_ratio``; group ``j`` gets ``ratios[j]``.

  Args:
    num_classes: ``K``; must equal ``len(ratios) * classes_per_ratio``.
    ratios: keep fractions, each in (0, 1].
    classes_per_ratio: classes per ratio, at least 1.
    rng: draws the permutation (one ``rng.permutation(K)`` call).

  Returns:
    float64 ``[K]``: the ratio of each class, in label order.

  Raises:
    JalError: a ratio outside (0, 1], no ratios, ``classes_per_ratio`` not a
      positive integer, or ``len(ratios) * classes_per_ratio != K``.
  """
  ratios = _check_ratios(ratios)
  if (isinstance(classes_per_ratio, bool) or not isinstance(classes_per_ratio, (int, np.integer))
      or classes_per_ratio < 1):
    raise JalError(f'{_KEY}.classes_per_ratio={classes_per_ratio!r} must be a positive integer '
                   '(MAL uses 20 on CIFAR-100)')
  if len(ratios) * classes_per_ratio != num_classes:
    if num_classes % len(ratios) == 0:
      fix = f'set {_KEY}.classes_per_ratio={num_classes // len(ratios)}'
    else:
      fix = f'give {_KEY}.ratios a number of ratios that divides {num_classes}'
    raise JalError(f'{_KEY}: {len(ratios)} ratios x classes_per_ratio={classes_per_ratio} = '
                   f'{len(ratios) * classes_per_ratio} classes, but the dataset has '
                   f'{num_classes}; {fix}')
  per_class = np.empty(num_classes, np.float64)
  per_class[rng.permutation(num_classes)] = np.repeat(ratios, classes_per_ratio)
  return per_class


def class_counts_random_ratios(counts: np.ndarray, ratios: Sequence[float], classes_per_ratio: int,
                               rng: np.random.Generator) -> np.ndarray:
  """Per-class targets of MAL's CIFAR100-Imbalanced (Ebrahimi et al. 2020, Sec. 4.1).

  Classes get their ratio from `random_ratio_assignment`; class ``c`` keeps
  ``round(n_c * ratio_c)`` examples (half up), at least 1 (and at most
  ``n_c``). The paper does not state the rounding; it states that "the least
  populated class has at least five instances" (500 * 10^-2 = 5 on CIFAR-100).
  On CIFAR-100 (500 per class) the counts are 5, 16 (15.81), 50, 158 (158.11)
  and 500, 20 classes each.

  Args:
    counts: int ``[K]``, examples per class.
    ratios: keep fractions, each in (0, 1].
    classes_per_ratio: classes per ratio; ``len(ratios) * classes_per_ratio``
      must equal ``K``.
    rng: draws which classes get which ratio.

  Returns:
    int64 ``[K]``, the number of examples each class keeps.

  Raises:
    JalError: see `random_ratio_assignment`; bad ``counts``.
  """
  counts = _check_counts(counts)
  per_class = random_ratio_assignment(counts.size, ratios, classes_per_ratio, rng)
  return _round_at_least_one(counts, per_class)


def class_counts_long_tail(counts: np.ndarray, imbalance_factor: float) -> np.ndarray:
  """Per-class targets of the exponential long tail of Cui et al. (CVPR 2019, Sec. 6.1).

  Class ``i`` (0-based, in label order) keeps ``n_i * mu^i`` examples with
  ``mu = (1 / imbalance_factor)^(1 / (K - 1))``, i.e. ``n_i *
  (1 / imbalance_factor)^(i / (K - 1))``, floored, at least 1 (and at most
  ``n_i``). Cui et al. write ``n = n_i mu^i`` with ``n_i`` the class's original
  count; on balanced data that is ``n_max * (1/factor)^(i/(K-1))``. The paper
  does not state the rounding; floor is what the widely reused LDAM-DRW code
  (Cao et al., NeurIPS 2019: ``int(img_max * imb_factor**(i / (K - 1.0)))``)
  does, and it gives the usual long-tailed CIFAR counts (CIFAR-10 x100: 5000,
  2997, ..., 83, 50, 12,406 in all; CIFAR-100 x100: 10,847). With ``K = 1``
  every class keeps all.

  Args:
    counts: int ``[K]``, examples per class.
    imbalance_factor: the largest class over the smallest, at least 1.

  Returns:
    int64 ``[K]``, the number of examples each class keeps.

  Raises:
    JalError: ``imbalance_factor`` below 1 or not a number; bad ``counts``.
  """
  counts = _check_counts(counts)
  factor = _check_factor(imbalance_factor)
  k = counts.size
  if k <= 1:
    return counts.copy()
  fraction = (1.0 / factor) ** (np.arange(k) / (k - 1))
  return _floor_at_least_one(counts, fraction)


def subset_by_counts(labels: np.ndarray, target_counts: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
  """Indices keeping a uniformly random ``target_counts[c]`` examples of each class ``c``.

  Args:
    labels: int ``[N]``, values in ``[0, K)``.
    target_counts: int ``[K]``, at most the number of examples of each class.
    rng: draws the subsets, class by class in label order (``rng.choice``
      without replacement; a class kept whole draws nothing).

  Returns:
    int64 ``[sum(target_counts)]``, sorted, distinct indices into ``labels``.

  Raises:
    JalError: a label outside ``[0, K)``, a negative target, or a target above
      what the class holds.
  """
  labels = np.asarray(labels)
  target = np.asarray(target_counts)
  if target.ndim != 1 or not np.issubdtype(target.dtype, np.integer) or (target < 0).any():
    raise JalError(f'imbalance: target counts must be non-negative integers [K], got {target!r}')
  k = target.size
  if labels.size and (labels.min() < 0 or labels.max() >= k):
    raise JalError(f'imbalance: labels must be in [0, {k}) for {k} target counts, got '
                   f'[{labels.min()}, {labels.max()}]')
  have = np.bincount(labels, minlength=k)
  over = np.flatnonzero(target > have)
  if over.size:
    c = int(over[0])
    raise JalError(f'imbalance: class {c} holds {have[c]} examples but {target[c]} were asked '
                   'for; a target count cannot exceed its class')
  chosen = [np.zeros(0, np.int64)]
  for c in range(k):
    members = np.flatnonzero(labels == c)
    if target[c] == members.size:
      chosen.append(members)
    elif target[c]:
      chosen.append(rng.choice(members, size=int(target[c]), replace=False))
  return np.sort(np.concatenate(chosen).astype(np.int64))


def imbalance(dataset: Dataset, kind: str | None, rng: np.random.Generator, *,
              factor: float = 10.0, classes: Sequence[int] = (0, 1, 2, 3, 4),
              ratios: Sequence[float] = MAL_RATIOS, classes_per_ratio: int = 20,
              imbalance_test: bool = False) -> Dataset:
  """The dataset with its train split made class-imbalanced.

  The keyword arguments are the keys of `imbalance_config` (so
  ``imbalance(ds, cfg.kind, rng, **other_keys)`` works); those a kind does
  not use are ignored. Mean and std are recomputed from the kept train images
  (as `jal.data.sources.subsample` does). The test split is kept as loaded
  (the papers evaluate on the balanced test set; Cui et al.: "The test set
  remains unchanged") unless ``imbalance_test``, which applies the same
  per-class fractions, with the same rounding and, for ``'random_ratios'``,
  the same class-to-ratio assignment, to the test split's own counts.

  ``rng`` is used in this order: the ratio assignment (``'random_ratios'``),
  the train subset, then the test subset, so turning ``imbalance_test`` on
  does not change the train split.

  Args:
    dataset: the (balanced) dataset.
    kind: None (return ``dataset`` unchanged), ``'step'``, ``'random_ratios'``
      or ``'long_tail'``.
    rng: generator that fixes the assignment and the kept examples.
    factor: ``'step'``: reduction of the listed classes; ``'long_tail'``: the
      imbalance factor. At least 1.
    classes: ``'step'``: the classes to reduce.
    ratios: ``'random_ratios'``: keep fractions in (0, 1].
    classes_per_ratio: ``'random_ratios'``: classes per ratio.
    imbalance_test: whether to imbalance the test split as well.

  Returns:
    A new `Dataset`: train images uint8 ``[N', H, W, C]`` and int32 labels
    ``[N']`` in their original order, float32 ``[C]`` mean and std of the
    kept train images; the test split likewise when ``imbalance_test``;
    everything else unchanged.

  Raises:
    JalError: an unknown kind or bad parameters for it (one line naming the
      ``config.dataset.imbalance`` key and the fix).
  """
  if kind is None:
    return dataset
  if kind not in KINDS:
    raise JalError(f"{_KEY}.kind={kind!r} is not one of {', '.join(map(repr, KINDS))}; set one "
                   'of them, or None for the balanced dataset')
  if not isinstance(imbalance_test, (bool, np.bool_)):
    raise JalError(f'{_KEY}.imbalance_test={imbalance_test!r} must be True or False')
  k = dataset.num_classes
  train_counts = np.bincount(dataset.train_labels, minlength=k)
  if kind == 'step':
    targets = lambda counts: class_counts_step(counts, classes, factor)
  elif kind == 'long_tail':
    targets = lambda counts: class_counts_long_tail(counts, factor)
  else:
    per_class = random_ratio_assignment(k, ratios, classes_per_ratio, rng)
    targets = lambda counts: _round_at_least_one(_check_counts(counts), per_class)
  train_idx = subset_by_counts(dataset.train_labels, targets(train_counts), rng)
  train_images = dataset.train_images[train_idx]
  mean, std = channel_stats(train_images)
  out = dataclasses.replace(dataset, train_images=train_images,
                            train_labels=dataset.train_labels[train_idx], mean=mean, std=std)
  if imbalance_test:
    test_counts = np.bincount(dataset.test_labels, minlength=k)
    test_idx = subset_by_counts(dataset.test_labels, targets(test_counts), rng)
    out = dataclasses.replace(out, test_images=dataset.test_images[test_idx],
                              test_labels=dataset.test_labels[test_idx])
  return out


def _floor_at_least_one(counts: np.ndarray, fraction: np.ndarray) -> np.ndarray:
  kept = np.floor(counts * fraction * (1.0 + _TOL)).astype(np.int64)
  return np.minimum(counts, np.maximum(kept, 1))


def _round_at_least_one(counts: np.ndarray, fraction: np.ndarray) -> np.ndarray:
  kept = np.floor(counts * fraction * (1.0 + _TOL) + 0.5).astype(np.int64)
  return np.minimum(counts, np.maximum(kept, 1))


def _check_counts(counts) -> np.ndarray:
  counts = np.asarray(counts)
  if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
    raise JalError(f'imbalance: class counts must be non-negative integers [K], got {counts!r}')
  return counts.astype(np.int64)


def _check_factor(factor) -> float:
  if (isinstance(factor, bool) or not isinstance(factor, (int, float, np.integer, np.floating))
      or not np.isfinite(factor) or factor < 1):
    raise JalError(f'{_KEY}.factor={factor!r} must be a number >= 1 (how many times smaller the '
                   'reduced classes are, e.g. 10 or 100)')
  return float(factor)


def _check_classes(classes, num_classes: int) -> tuple[int, ...]:
  try:
    values = tuple(classes)
  except TypeError:
    values = None
  if (values is None or any(isinstance(c, bool) or not isinstance(c, (int, np.integer))
                            for c in values)
      or len(set(values)) != len(values) or any(not 0 <= c < num_classes for c in values)):
    raise JalError(f'{_KEY}.classes={classes!r} must be distinct class indices in '
                   f'0..{num_classes - 1} (TA-VAAL reduces the first five: (0, 1, 2, 3, 4))')
  return tuple(int(c) for c in values)


def _check_ratios(ratios) -> np.ndarray:
  try:
    values = np.asarray(tuple(ratios), np.float64)
  except (TypeError, ValueError):
    values = None
  if (values is None or values.ndim != 1 or values.size == 0
      or not np.all((values > 0) & (values <= 1))):
    raise JalError(f'{_KEY}.ratios={ratios!r} must be a non-empty list of fractions in (0, 1] '
                   '(MAL: 0.01, 10**-1.5, 0.1, 10**-0.5, 1.0)')
  return values
