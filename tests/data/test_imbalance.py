"""Tests of jal.data.imbalance, the class-imbalanced train splits of the papers (step, long tail,
MAL's random ratios): the per-class targets, the subset that meets them, the imbalanced dataset
(the test split imbalanced too on request), and one-line errors that name the config key."""

from __future__ import annotations

import numpy as np
import pytest

from jal.data import imbalance as imb
from jal.data.dataset import Dataset, channel_stats
from jal.errors import JalError


def balanced_labels(num_classes: int, per_class: int, seed: int = 0) -> np.ndarray:
  """int32 ``[num_classes * per_class]``, every class ``per_class`` times, shuffled."""
  labels = np.repeat(np.arange(num_classes, dtype=np.int32), per_class)
  return np.random.default_rng(seed).permutation(labels)


def make_dataset(num_classes: int, train_per_class: int, test_per_class: int) -> Dataset:
  """A dataset whose 1x1 RGB image ``i`` encodes ``i`` (so kept images can be traced)."""

  def encode(n):
    i = np.arange(n)
    return np.stack([i & 255, (i >> 8) & 255, (i >> 16) & 255], -1).astype(np.uint8)[:, None, None]

  train_labels = balanced_labels(num_classes, train_per_class, seed=1)
  test_labels = balanced_labels(num_classes, test_per_class, seed=2)
  train_images = encode(train_labels.size)
  mean, std = channel_stats(train_images)
  return Dataset(name='toy', train_images=train_images, train_labels=train_labels,
                 test_images=encode(test_labels.size), test_labels=test_labels,
                 class_names=tuple(str(c) for c in range(num_classes)), flip=True,
                 mean=mean, std=std)


def decode(images: np.ndarray) -> np.ndarray:
  x = images[:, 0, 0].astype(np.int64)
  return x[:, 0] | (x[:, 1] << 8) | (x[:, 2] << 16)


# ----------------------------------------------------------------------------
# per-class targets
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('factor, reduced', [(10, 500), (100, 50), (10.0, 500), (1, 5000)])
def test_step_cifar10(factor, reduced):
  counts = np.full(10, 5000)
  out = imb.class_counts_step(counts, (0, 1, 2, 3, 4), factor)
  assert out.dtype == np.int64
  np.testing.assert_array_equal(out, [reduced] * 5 + [5000] * 5)


def test_step_floors_and_keeps_at_least_one():
  out = imb.class_counts_step(np.array([99, 5, 0, 7]), (0, 1, 2), 10)
  np.testing.assert_array_equal(out, [9, 1, 0, 7])  # 9.9 -> 9, 0.5 -> 1, empty stays 0


def test_random_ratios_cifar100():
  counts = np.full(100, 500)
  out = imb.class_counts_random_ratios(counts, imb.MAL_RATIOS, 20, np.random.default_rng(0))
  assert out.dtype == np.int64
  # 500 * (1e-2, 10**-1.5, 1e-1, 10**-0.5, 1) = 5, 15.81, 50, 158.11, 500; rounded.
  values, freq = np.unique(out, return_counts=True)
  np.testing.assert_array_equal(values, [5, 16, 50, 158, 500])
  np.testing.assert_array_equal(freq, [20] * 5)


def test_random_ratios_assignment_is_random_permutation_of_groups():
  a = imb.random_ratio_assignment(100, imb.MAL_RATIOS, 20, np.random.default_rng(0))
  b = imb.random_ratio_assignment(100, imb.MAL_RATIOS, 20, np.random.default_rng(0))
  c = imb.random_ratio_assignment(100, imb.MAL_RATIOS, 20, np.random.default_rng(1))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)  # each run its own imbalanced distribution (MAL Sec. 4.1)
  np.testing.assert_allclose(np.sort(a), np.repeat(imb.MAL_RATIOS, 20))
  # Not simply classes 0-19 at 10^-2 and so on.
  assert not np.array_equal(a, np.repeat(imb.MAL_RATIOS, 20))


def test_random_ratios_rounds_half_up_and_keeps_at_least_one():
  # Two classes of 5 at ratio 0.1 and 0.5: 0.5 -> 1 (at least 1), 2.5 -> 3 (half up).
  out = imb.class_counts_random_ratios(np.array([5, 5]), (0.1, 0.5), 1, np.random.default_rng(0))
  assert sorted(out.tolist()) == [1, 3]


def test_long_tail_cifar10_x100():
  out = imb.class_counts_long_tail(np.full(10, 5000), 100)
  assert out.dtype == np.int64
  # The CIFAR-10-LT x100 counts of the long-tail literature (12,406 images).
  np.testing.assert_array_equal(out, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
  assert out.sum() == 12406
  assert np.all(np.diff(out) < 0)


@pytest.mark.parametrize('k, n, factor, total', [(10, 5000, 10, 20431), (100, 500, 100, 10847),
                                                 (100, 500, 10, 19573)])
def test_long_tail_totals(k, n, factor, total):
  out = imb.class_counts_long_tail(np.full(k, n), factor)
  assert out[0] == n and out[-1] == n // factor
  assert out.sum() == total
  assert np.all(np.diff(out) <= 0)


def test_long_tail_edge_cases():
  np.testing.assert_array_equal(imb.class_counts_long_tail(np.full(4, 30), 1), [30] * 4)
  np.testing.assert_array_equal(imb.class_counts_long_tail(np.array([7]), 100), [7])
  np.testing.assert_array_equal(imb.class_counts_long_tail(np.array([10, 10, 10]), 1000),
                                [10, 1, 1])  # 0.316 -> at least 1; 0.01 -> at least 1


# ----------------------------------------------------------------------------
# subset_by_counts
# ----------------------------------------------------------------------------


def test_subset_by_counts_right_classes_distinct_sorted():
  labels = balanced_labels(10, 5000)
  target = imb.class_counts_step(np.bincount(labels), (0, 1, 2, 3, 4), 100)
  idx = imb.subset_by_counts(labels, target, np.random.default_rng(3))
  assert idx.dtype == np.int64
  assert np.all(np.diff(idx) > 0)  # sorted and distinct
  np.testing.assert_array_equal(np.bincount(labels[idx], minlength=10), target)


def test_subset_by_counts_deterministic_given_seed():
  labels = balanced_labels(5, 100)
  target = np.array([10, 20, 30, 40, 100])
  a = imb.subset_by_counts(labels, target, np.random.default_rng(7))
  b = imb.subset_by_counts(labels, target, np.random.default_rng(7))
  c = imb.subset_by_counts(labels, target, np.random.default_rng(8))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_subset_by_counts_is_uniform_within_a_class():
  labels = np.zeros(10, np.int32)
  hits = np.zeros(10)
  rng = np.random.default_rng(0)
  for _ in range(2000):
    hits[imb.subset_by_counts(labels, np.array([3]), rng)] += 1
  np.testing.assert_allclose(hits / 2000, 0.3, atol=0.05)


def test_subset_by_counts_errors():
  labels = np.array([0, 0, 1])
  with pytest.raises(JalError, match='class 1 holds 1 examples but 2'):
    imb.subset_by_counts(labels, np.array([1, 2]), np.random.default_rng(0))
  with pytest.raises(JalError, match='labels must be in'):
    imb.subset_by_counts(labels, np.array([1]), np.random.default_rng(0))
  with pytest.raises(JalError, match='non-negative'):
    imb.subset_by_counts(labels, np.array([-1, 1]), np.random.default_rng(0))


# ----------------------------------------------------------------------------
# imbalance(dataset)
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('kind, params, expected', [
    ('step', dict(factor=100), [5] * 5 + [500] * 5),
    ('long_tail', dict(factor=10), None),
])
def test_imbalance_train_only(kind, params, expected):
  ds = make_dataset(10, 500, 100)
  out = imb.imbalance(ds, kind, np.random.default_rng(0), **params)
  counts = np.bincount(out.train_labels, minlength=10)
  if expected is None:
    expected = imb.class_counts_long_tail(np.full(10, 500), params['factor'])
  np.testing.assert_array_equal(counts, expected)
  # The kept images are the kept examples, in their original order.
  src = decode(out.train_images)
  assert np.all(np.diff(src) > 0)
  np.testing.assert_array_equal(ds.train_labels[src], out.train_labels)
  assert out.train_labels.dtype == np.int32 and out.train_images.dtype == np.uint8
  # Mean and std are those of the kept images.
  mean, std = channel_stats(out.train_images)
  np.testing.assert_array_equal(out.mean, mean)
  np.testing.assert_array_equal(out.std, std)
  # The test split is untouched.
  assert out.test_images is ds.test_images and out.test_labels is ds.test_labels
  assert out.class_names == ds.class_names and out.name == ds.name


def test_imbalance_random_ratios_and_determinism():
  ds = make_dataset(10, 100, 20)
  params = dict(ratios=(0.01, 10**-1.5, 0.1, 10**-0.5, 1.0), classes_per_ratio=2)
  a = imb.imbalance(ds, 'random_ratios', np.random.default_rng(5), **params)
  b = imb.imbalance(ds, 'random_ratios', np.random.default_rng(5), **params)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  np.testing.assert_array_equal(a.train_labels, b.train_labels)
  counts = np.bincount(a.train_labels, minlength=10)
  # 100 * ratios = 1, 3.16, 10, 31.6, 100 -> 1, 3, 10, 32, 100, two classes each.
  np.testing.assert_array_equal(np.sort(counts), np.repeat([1, 3, 10, 32, 100], 2))


def test_imbalance_test_split_with_same_fractions():
  ds = make_dataset(10, 500, 100)
  rng_params = dict(ratios=imb.MAL_RATIOS, classes_per_ratio=2)
  off = imb.imbalance(ds, 'random_ratios', np.random.default_rng(2), **rng_params)
  on = imb.imbalance(ds, 'random_ratios', np.random.default_rng(2), imbalance_test=True,
                     **rng_params)
  # The train split does not depend on imbalance_test.
  np.testing.assert_array_equal(on.train_labels, off.train_labels)
  train = np.bincount(on.train_labels, minlength=10)
  test = np.bincount(on.test_labels, minlength=10)
  # Same class-to-ratio assignment: 500 * r and 100 * r, rounded half up, at least 1.
  ratio_of = {5: 1e-2, 16: 10**-1.5, 50: 1e-1, 158: 10**-0.5, 500: 1.0}
  expected = [max(1, int(np.floor(100 * ratio_of[int(n)] + 0.5))) for n in train]
  np.testing.assert_array_equal(test, expected)
  src = decode(on.test_images)
  assert np.all(np.diff(src) > 0)
  np.testing.assert_array_equal(ds.test_labels[src], on.test_labels)

  step = imb.imbalance(ds, 'step', np.random.default_rng(0), factor=10, imbalance_test=True)
  np.testing.assert_array_equal(np.bincount(step.test_labels), [10] * 5 + [100] * 5)
  lt = imb.imbalance(ds, 'long_tail', np.random.default_rng(0), factor=100, imbalance_test=True)
  np.testing.assert_array_equal(np.bincount(lt.test_labels),
                                imb.class_counts_long_tail(np.full(10, 100), 100))


def test_imbalance_none_is_identity():
  ds = make_dataset(3, 10, 5)
  assert imb.imbalance(ds, None, np.random.default_rng(0)) is ds


def test_imbalance_config_defaults():
  cfg = imb.imbalance_config()
  assert cfg.kind is None
  assert cfg.factor == 10.0 and tuple(cfg.classes) == (0, 1, 2, 3, 4)
  np.testing.assert_allclose(cfg.ratios, [0.01, 10**-1.5, 0.1, 10**-0.5, 1.0])
  assert cfg.classes_per_ratio == 20 and cfg.imbalance_test is False
  cfg.kind = 'step'  # a str field
  params = {k: v for k, v in cfg.items() if k != 'kind'}
  out = imb.imbalance(make_dataset(10, 50, 5), cfg.kind, np.random.default_rng(0), **params)
  np.testing.assert_array_equal(np.bincount(out.train_labels), [5] * 5 + [50] * 5)


# ----------------------------------------------------------------------------
# errors: one line, naming the config key
# ----------------------------------------------------------------------------


@pytest.mark.parametrize('kind, params, key', [
    ('balanced', {}, 'config.dataset.imbalance.kind'),
    ('step', dict(factor=0.5), 'config.dataset.imbalance.factor'),
    ('long_tail', dict(factor=0.0), 'config.dataset.imbalance.factor'),
    ('step', dict(factor=float('nan')), 'config.dataset.imbalance.factor'),
    ('step', dict(classes=(0, 10)), 'config.dataset.imbalance.classes'),
    ('step', dict(classes=(-1,)), 'config.dataset.imbalance.classes'),
    ('step', dict(classes=(1, 1)), 'config.dataset.imbalance.classes'),
    ('random_ratios', dict(ratios=(0.0, 1.0), classes_per_ratio=5),
     'config.dataset.imbalance.ratios'),
    ('random_ratios', dict(ratios=(0.5, 1.5), classes_per_ratio=5),
     'config.dataset.imbalance.ratios'),
    ('random_ratios', dict(ratios=(), classes_per_ratio=5), 'config.dataset.imbalance.ratios'),
    ('random_ratios', dict(classes_per_ratio=20), 'classes_per_ratio=2'),
    ('random_ratios', dict(classes_per_ratio=0), 'config.dataset.imbalance.classes_per_ratio'),
    ('step', dict(imbalance_test='yes'), 'config.dataset.imbalance.imbalance_test'),
])
def test_imbalance_errors_are_one_line_and_name_the_key(kind, params, key):
  ds = make_dataset(10, 20, 5)
  with pytest.raises(JalError) as e:
    imb.imbalance(ds, kind, np.random.default_rng(0), **params)
  message = str(e.value)
  assert key in message
  assert '\n' not in message


def test_ratio_count_mismatch_suggests_fix():
  with pytest.raises(JalError, match='divides 7'):
    imb.random_ratio_assignment(7, imb.MAL_RATIOS, 1, np.random.default_rng(0))
