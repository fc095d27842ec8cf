"""Tests of jal.data.idx, the reader of IDX files: a round trip, plain and gzipped, bad magic and
truncated files, MNIST from a local folder of IDX files, and the real MNIST where JAL_DATA_DIR
holds a copy."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest

from jal import data as jd
from jal.data import idx
from jal.errors import JalError


def write_idx(path, array: np.ndarray, gz: bool):
  array = np.ascontiguousarray(array, np.uint8)
  raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  raw += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
  opener = gzip.open if gz else open
  with opener(str(path) + (".gz" if gz else ""), "wb") as f:
    f.write(raw)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_roundtrip(tmp_path, gz):
  rng = np.random.default_rng(1)
  images = rng.integers(0, 256, (7, 4, 3), dtype=np.uint8)
  labels = rng.integers(0, 10, (7,), dtype=np.uint8)
  write_idx(tmp_path / "imgs", images, gz)
  write_idx(tmp_path / "lbls", labels, gz)
  suffix = ".gz" if gz else ""
  got_images = idx.read_idx(str(tmp_path / "imgs") + suffix)
  got_labels = idx.read_idx(str(tmp_path / "lbls") + suffix)
  assert got_images.dtype == np.uint8 and got_images.shape == (7, 4, 3)
  np.testing.assert_array_equal(got_images, images)
  np.testing.assert_array_equal(got_labels, labels)


def test_idx_bad_magic_and_truncated(tmp_path):
  bad = tmp_path / "bad"
  bad.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 2) + b"\x00\x01")
  with pytest.raises(JalError, match="bad magic"):
    idx.read_idx(str(bad))
  short = tmp_path / "short"
  short.write_bytes(struct.pack(">BBBB", 0, 0, 8, 1) + struct.pack(">I", 5) + b"\x00\x01")
  with pytest.raises(JalError, match="truncated"):
    idx.read_idx(str(short))


def test_mnist_from_local_idx(tmp_path):
  rng = np.random.default_rng(2)
  mnist = tmp_path / "data" / "mnist"
  mnist.mkdir(parents=True)
  arrays = {
      "train-images-idx3-ubyte": rng.integers(0, 256, (12, 5, 5), dtype=np.uint8),
      "train-labels-idx1-ubyte": np.arange(12, dtype=np.uint8) % 10,
      "t10k-images-idx3-ubyte": rng.integers(0, 256, (4, 5, 5), dtype=np.uint8),
      "t10k-labels-idx1-ubyte": np.array([3, 1, 4, 1], np.uint8),
  }
  for i, (stem, arr) in enumerate(arrays.items()):
    write_idx(mnist / stem, arr, gz=bool(i % 2))  # Mixed gz and plain.
  ds = jd.load("mnist", data_dir=str(tmp_path / "data"), cache_dir=str(tmp_path / "c"))
  assert ds.train_images.shape == (12, 5, 5, 1) and ds.train_images.dtype == np.uint8
  assert ds.test_labels.dtype == np.int32
  np.testing.assert_array_equal(ds.train_images[..., 0], arrays["train-images-idx3-ubyte"])
  np.testing.assert_array_equal(ds.test_labels, [3, 1, 4, 1])
  assert ds.class_names == tuple("0123456789") and ds.flip is False


# ----------------------------------- real data (only where a local copy is configured)

# Read at import: the autouse fixture hides JAL_DATA_DIR from the other tests.
REAL_DATA_DIR = os.environ.get("JAL_DATA_DIR")


@pytest.mark.skipif(not (REAL_DATA_DIR and os.path.isdir(os.path.join(REAL_DATA_DIR, "mnist"))),
                    reason="JAL_DATA_DIR is not set or holds no mnist/")
def test_real_mnist(tmp_path):
  ds = jd.load("mnist", data_dir=REAL_DATA_DIR, cache_dir=str(tmp_path))
  assert ds.train_images.shape == (60000, 28, 28, 1) and ds.test_images.shape == (10000, 28, 28, 1)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  for labels, n in ((ds.train_labels, 60000), (ds.test_labels, 10000)):
    assert labels.min() == 0 and labels.max() == 9
    counts = np.bincount(labels, minlength=10)
    assert counts.sum() == n and counts.min() > 0.08 * n
  # The official MNIST test-set class counts.
  np.testing.assert_array_equal(np.bincount(ds.test_labels),
                                [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
