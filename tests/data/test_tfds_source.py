"""Tests of jal.data.tfds_source, the path through TensorFlow Datasets: with nothing prepared and
no network it fails fast without a download attempt; SVHN and Caltech-101 load from tfds mock data
(cached, resized, without the background class)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import tfds_must_not_run as _tfds_must_not_run
from jal import data as jd
from jal.data import tfds_source
from jal.data.dataset import Arrays
from jal.errors import JalError


def test_tfds_not_prepared_and_offline_fails_fast(tmp_path, monkeypatch):
  """Real tfds, nothing prepared, no network: error without any download attempt."""
  tfds = pytest.importorskip("tensorflow_datasets")
  calls = []
  real_load = tfds.load

  def spy_load(*args, **kwargs):
    calls.append(kwargs.get("download"))
    if kwargs.get("download") is not False:
      raise AssertionError("tried to download")
    return real_load(*args, **kwargs)

  monkeypatch.setattr(tfds, "load", spy_load)
  monkeypatch.setattr(tfds_source, "network_available", lambda *a, **k: False)
  with pytest.raises(JalError, match=r"dataset 'svhn_cropped' not found.*no network"):
    jd.load("svhn_cropped", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
  assert calls == [False]


def test_svhn_via_tfds_mock(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  monkeypatch.setattr(tfds_source, "network_available", lambda *a, **k: pytest.fail("network"))
  with tfds.testing.mock_data(num_examples=12):
    ds = jd.load("svhn_cropped", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
  assert ds.train_images.shape == (12, 32, 32, 3) and ds.test_images.shape == (12, 32, 32, 3)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.num_classes == 10 and ds.flip is False
  assert ds.train_labels.min() >= 0 and ds.train_labels.max() < 10
  # The tfds result is cached under "tfds:svhn_cropped": no tfds the second time.
  monkeypatch.setattr(tfds_source, "fetch_arrays", _tfds_must_not_run)
  again = jd.load("svhn_cropped", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"))
  np.testing.assert_array_equal(again.train_images, ds.train_images)


def test_tfds_drops_caltech_background():
  arrays = Arrays(
      train_images=np.arange(4, dtype=np.uint8).reshape(4, 1, 1, 1),
      train_labels=np.array([0, 1, 2, 1], np.int32),
      test_images=np.zeros((2, 1, 1, 1), np.uint8),
      test_labels=np.array([2, 1], np.int32),
      class_names=("accordion", "background_google", "cup"))
  out = tfds_source._drop_background(arrays)
  assert out.class_names == ("accordion", "cup")
  np.testing.assert_array_equal(out.train_labels, [0, 1])
  np.testing.assert_array_equal(out.train_images.ravel(), [0, 2])
  np.testing.assert_array_equal(out.test_labels, [1])


def test_caltech_via_tfds_mock_is_resized_without_background(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    ds = jd.load("caltech101", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), image_size=12)
  assert ds.image_shape == (12, 12, 3) and ds.train_images.dtype == np.uint8
  assert ds.num_classes == 101 and "background_google" not in [c.lower() for c in ds.class_names]
