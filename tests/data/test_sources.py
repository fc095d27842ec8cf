"""Tests of jal.data.sources, the datasets by name: unknown names and bad folder paths, the
one-line error for missing data, the embedded digits offline, and the stratified, seeded subsample.
"""

from __future__ import annotations

import numpy as np
import pytest

from helpers import tfds_must_not_run as _tfds_must_not_run
from jal import data as jd
from jal.data import tfds_source
from jal.errors import JalError


def test_folder_errors(tmp_path):
  with pytest.raises(JalError, match="needs a path"):
    jd.load("folder", cache_dir=str(tmp_path))
  with pytest.raises(JalError, match="does not exist"):
    jd.load("folder", path=str(tmp_path / "nope"), cache_dir=str(tmp_path))
  with pytest.raises(JalError, match="known datasets: digits, mnist"):
    jd.load("imagenet", cache_dir=str(tmp_path))


def test_missing_dataset_one_line_error(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds_source, "fetch_arrays", _tfds_must_not_run)
  empty = tmp_path / "empty"
  empty.mkdir()
  monkeypatch.setenv("JAL_DATA_DIR", str(empty))
  with pytest.raises(JalError) as info:
    jd.load("svhn_cropped", cache_dir=str(tmp_path / "c"))
  message = str(info.value)
  assert "\n" not in message
  assert f"dataset 'svhn_cropped' not found: no local copy in JAL_DATA_DIR={empty}" in message
  assert "svhn_cropped.zip" in message and "svhn_cropped/" in message
  assert "offline in this test" in message and "set JAL_DATA_DIR" in message

  monkeypatch.delenv("JAL_DATA_DIR")
  with pytest.raises(JalError, match="JAL_DATA_DIR is not set.*cifar10_jpeg.zip"):
    jd.load("cifar10", cache_dir=str(tmp_path / "c"))


def test_digits_offline(tmp_path):
  ds = jd.load("digits", cache_dir=str(tmp_path))
  assert ds.train_images.shape[1:] == (8, 8, 1) and ds.train_images.dtype == np.uint8
  assert ds.num_train + ds.test_images.shape[0] == 1797
  assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
  assert ds.train_labels.dtype == np.int32 and ds.flip is False
  assert ds.train_images.max() == 255 and ds.train_images.min() == 0
  test_share = np.bincount(ds.test_labels) / (np.bincount(ds.test_labels) + np.bincount(ds.train_labels))
  assert np.all(np.abs(test_share - 0.2) < 0.02)
  from sklearn.datasets import load_digits
  expected = set(np.round(load_digits().images * 255 / 16).astype(np.uint8).ravel())
  assert set(np.unique(ds.train_images)) <= expected
  other = jd.load("digits", cache_dir=str(tmp_path), split_seed=3)
  assert not np.array_equal(other.test_labels, ds.test_labels) or not np.array_equal(
      other.test_images, ds.test_images)


def _toy_dataset() -> jd.Dataset:
  rng = np.random.default_rng(0)
  train_labels = np.repeat(np.arange(3, dtype=np.int32), [60, 30, 10])
  test_labels = np.repeat(np.arange(3, dtype=np.int32), [20, 10, 10])
  train = rng.integers(0, 256, (100, 2, 2, 1), dtype=np.uint8)
  test = rng.integers(0, 256, (40, 2, 2, 1), dtype=np.uint8)
  mean, std = jd.channel_stats(train)
  return jd.Dataset("toy", train, train_labels, test, test_labels, ("a", "b", "c"), True, mean, std)


def test_subsample_stratified_and_deterministic():
  ds = _toy_dataset()
  sub = jd.subsample(ds, max_train=20, max_test=None, seed=5)
  np.testing.assert_array_equal(np.bincount(sub.train_labels), [12, 6, 2])
  np.testing.assert_array_equal(sub.test_labels, ds.test_labels)  # None keeps all.
  again = jd.subsample(ds, max_train=20, max_test=None, seed=5)
  np.testing.assert_array_equal(again.train_images, sub.train_images)
  other = jd.subsample(ds, max_train=20, max_test=None, seed=6)
  assert not np.array_equal(other.train_images, sub.train_images)
  # Rows are kept in their original order (sorted indices).
  rows = [int(np.flatnonzero((ds.train_images == im).all(axis=(1, 2, 3)))[0]) for im in sub.train_images]
  assert rows == sorted(rows)
  np.testing.assert_allclose(sub.mean, jd.channel_stats(sub.train_images)[0])
  test_sub = jd.subsample(ds, max_train=None, max_test=7, seed=5)
  assert test_sub.test_labels.shape == (7,) and test_sub.num_train == 100
  np.testing.assert_array_equal(np.bincount(test_sub.test_labels), [3, 2, 2])  # 3.5, 1.75, 1.75
  with pytest.raises(JalError):
    jd.subsample(ds, max_train=0, max_test=None, seed=0)


def test_subsample_does_not_touch_global_rng():
  np.random.seed(123)
  expected = np.random.random()
  np.random.seed(123)
  jd.subsample(_toy_dataset(), max_train=10, max_test=10, seed=0)
  assert np.random.random() == expected
