"""Tests for jal.data: IDX and image-folder readers, cache, tfds path, subsample."""

from __future__ import annotations

import gzip
import io
import os
import struct
import zipfile

import numpy as np
import pytest
from PIL import Image

from jal import data as jd
from jal.data import cache
from jal.data import idx
from jal.data import local
from jal.data import tfds_source
from jal.data.dataset import Arrays
from jal.errors import JalError


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
  """No test reads the user's data, cache or tfds folders."""
  monkeypatch.delenv("JAL_DATA_DIR", raising=False)
  monkeypatch.setenv("JAL_CACHE_DIR", str(tmp_path / "default_cache"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))


# ----------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------


def write_idx(path, array: np.ndarray, gz: bool):
  array = np.ascontiguousarray(array, np.uint8)
  raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
  raw += struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
  opener = gzip.open if gz else open
  with opener(str(path) + (".gz" if gz else ""), "wb") as f:
    f.write(raw)


def png_bytes(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def image_for(seed: int, size=(6, 5), grey=False) -> np.ndarray:
  rng = np.random.default_rng(seed)
  shape = size if grey else size + (3,)
  return rng.integers(0, 256, shape, dtype=np.uint8)


def build_folder(files: dict[str, bytes], root, as_zip: bool) -> str:
  """Writes {relative path: bytes} as a directory or a zip; returns its path."""
  if as_zip:
    path = str(root) + ".zip"
    with zipfile.ZipFile(path, "w") as z:
      for name, blob in files.items():
        z.writestr(name, blob)
    return path
  for name, blob in files.items():
    full = os.path.join(root, name)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
      f.write(blob)
  return str(root)


def split_folder(grey=False, size=(6, 5), prefix=""):
  """train/test x 3 classes (given out of alphabetical order); returns (files, expected)."""
  files, expected = {}, {"train": [], "test": []}
  seed = 0
  for split, per_class in (("train", 3), ("test", 2)):
    for cls in ("zebra", "ant", "moth"):
      for i in range(per_class):
        img = image_for(seed, size, grey)
        seed += 1
        files[f"{prefix}{split}/{cls}/img_{i}.png"] = png_bytes(img)
        expected[split].append((cls, i, img))
  return files, expected


# ----------------------------------------------------------------------------
# IDX
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# image folders
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("as_zip", [False, True])
@pytest.mark.parametrize("grey", [False, True])
def test_image_folder_split_layout(tmp_path, as_zip, grey):
  files, expected = split_folder(grey=grey, prefix="wrapper/" if as_zip else "")
  path = build_folder(files, tmp_path / "imgs", as_zip)
  ds = jd.load("folder", path=path, cache_dir=str(tmp_path / "c"))
  assert ds.class_names == ("ant", "moth", "zebra")
  channels = 1 if grey else 3
  assert ds.train_images.shape == (9, 6, 5, channels) and ds.test_images.shape == (6, 6, 5, channels)
  assert ds.train_images.dtype == np.uint8 and ds.train_labels.dtype == np.int32
  assert ds.flip is True and ds.mean.shape == (channels,)
  for split, images, labels in (("train", ds.train_images, ds.train_labels),
                                ("test", ds.test_images, ds.test_labels)):
    # Every expected image appears once, with the label of its sorted class.
    for cls, _, img in expected[split]:
      img = img[..., None] if grey else img
      hits = [k for k in range(len(images)) if np.array_equal(images[k], img)]
      assert len(hits) == 1
      assert ds.class_names[labels[hits[0]]] == cls
  np.testing.assert_array_equal(np.bincount(ds.train_labels), [3, 3, 3])
  np.testing.assert_array_equal(np.bincount(ds.test_labels), [2, 2, 2])


def test_image_folder_mixed_grey_and_colour_is_rgb(tmp_path):
  files = {"train/a/0.png": png_bytes(image_for(0, grey=True)),
           "train/b/0.png": png_bytes(image_for(1)),
           "test/a/0.png": png_bytes(image_for(2, grey=True)),
           "test/b/0.png": png_bytes(image_for(3))}
  ds = jd.load("folder", path=build_folder(files, tmp_path / "m", False), cache_dir=str(tmp_path))
  assert ds.train_images.shape[-1] == 3
  grey = image_for(0, grey=True)
  np.testing.assert_array_equal(ds.train_images[0], np.stack([grey] * 3, -1))


@pytest.mark.parametrize("as_zip", [False, True])
def test_class_only_folder_gets_seeded_stratified_split(tmp_path, as_zip):
  files = {}
  counts = {"cat": 10, "dog": 5, "eel": 2}
  for cls, n in counts.items():
    for i in range(n):
      files[f"photos/{cls}/{i:03d}.png"] = png_bytes(image_for(100 * len(cls) + i + ord(cls[0])))
  files["photos/readme.txt"] = b"not an image"
  path = build_folder(files, tmp_path / "f", as_zip)
  a = jd.load("folder", path=path, cache_dir=str(tmp_path / "c1"), split_seed=0)
  b = jd.load("folder", path=path, cache_dir=str(tmp_path / "c2"), split_seed=0)
  c = jd.load("folder", path=path, cache_dir=str(tmp_path / "c3"), split_seed=1)
  assert a.class_names == ("cat", "dog", "eel")
  np.testing.assert_array_equal(np.bincount(a.test_labels), [2, 1, 1])  # 20%, at least 1.
  np.testing.assert_array_equal(np.bincount(a.train_labels), [8, 4, 1])
  np.testing.assert_array_equal(a.test_images, b.test_images)  # Same seed, same split.
  assert not np.array_equal(a.test_images, c.test_images)  # Another seed, another split.


def test_caltech_layout_from_zip_skips_background(tmp_path):
  files = {}
  for cls, n in (("BACKGROUND_Google", 3), ("accordion", 6), ("Faces", 5)):
    for i in range(n):
      size = (10 + i, 12) if i % 2 else (9, 7)  # Different sizes: caltech resizes.
      files[f"101_ObjectCategories/{cls}/image_{i + 1:04d}.jpg"] = png_bytes(image_for(i, size))
  data = tmp_path / "data"
  data.mkdir()
  build_folder(files, data / "caltech101_160px", as_zip=True)
  ds = jd.load("caltech101", data_dir=str(data), cache_dir=str(tmp_path / "c"))
  assert ds.class_names == ("Faces", "accordion")  # Sorted; no background.
  assert ds.image_shape == (64, 64, 3) and ds.flip is True
  assert ds.num_train + len(ds.test_labels) == 11
  np.testing.assert_array_equal(np.bincount(ds.test_labels), [1, 1])


def test_resize_and_mixed_sizes(tmp_path):
  files = {"train/a/0.png": png_bytes(image_for(0, (6, 5))),
           "train/b/0.png": png_bytes(image_for(1, (9, 4))),
           "test/a/0.png": png_bytes(image_for(2, (6, 5))),
           "test/b/0.png": png_bytes(image_for(3, (6, 5)))}
  path = build_folder(files, tmp_path / "mixed", as_zip=True)
  with pytest.raises(JalError, match=r"different sizes.*6x5.*9x4.*config\.dataset\.image_size"):
    jd.load("folder", path=path, cache_dir=str(tmp_path / "c"))
  ds = jd.load("folder", path=path, image_size=7, cache_dir=str(tmp_path / "c"))
  assert ds.train_images.shape == (2, 7, 7, 3) and ds.test_images.shape == (2, 7, 7, 3)
  flat = np.full((6, 5, 3), 77, np.uint8)  # Bilinear resize keeps a flat colour.
  files["train/a/0.png"] = png_bytes(flat)
  ds = jd.load("folder", path=build_folder(files, tmp_path / "m2", as_zip=False), image_size=3,
               cache_dir=str(tmp_path / "c"))
  np.testing.assert_array_equal(ds.train_images[0], np.full((3, 3, 3), 77, np.uint8))


def test_corrupt_image_in_zip_names_member(tmp_path):
  files, _ = split_folder()
  files["train/moth/broken.png"] = png_bytes(image_for(9))[:40]  # Truncated PNG.
  path = build_folder(files, tmp_path / "bad", as_zip=True)
  with pytest.raises(JalError) as info:
    jd.load("folder", path=path, cache_dir=str(tmp_path / "c"))
  message = str(info.value)
  assert "train/moth/broken.png" in message and path in message
  assert "remove or replace" in message and "\n" not in message


def test_folder_errors(tmp_path):
  with pytest.raises(JalError, match="needs a path"):
    jd.load("folder", cache_dir=str(tmp_path))
  with pytest.raises(JalError, match="does not exist"):
    jd.load("folder", path=str(tmp_path / "nope"), cache_dir=str(tmp_path))
  with pytest.raises(JalError, match="known datasets: digits, mnist"):
    jd.load("imagenet", cache_dir=str(tmp_path))


# ----------------------------------------------------------------------------
# missing data, tfds
# ----------------------------------------------------------------------------


def _tfds_must_not_run(*args, **kwargs):
  raise RuntimeError("offline in this test")


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


# ----------------------------------------------------------------------------
# cache
# ----------------------------------------------------------------------------


def test_cache_skips_decoding_and_notices_changes(tmp_path, monkeypatch):
  files, _ = split_folder()
  path = build_folder(files, tmp_path / "imgs", as_zip=True)
  calls = []
  real_decode = local.decode_image

  def counting_decode(*args, **kwargs):
    calls.append(1)
    return real_decode(*args, **kwargs)

  monkeypatch.setattr(local, "decode_image", counting_decode)
  cache_dir = str(tmp_path / "cache")
  first = jd.load("folder", path=path, cache_dir=cache_dir)
  assert len(calls) == 15
  entries = os.listdir(cache_dir)
  assert len(entries) == 1 and entries[0].endswith(".npz")  # No temporary left behind.

  second = jd.load("folder", path=path, cache_dir=cache_dir)
  assert len(calls) == 15  # Served from the cache.
  for field in ("train_images", "train_labels", "test_images", "test_labels", "mean", "std"):
    np.testing.assert_array_equal(getattr(second, field), getattr(first, field))
    assert getattr(second, field).dtype == getattr(first, field).dtype
  assert second.class_names == first.class_names and second.flip == first.flip

  jd.load("folder", path=path, cache_dir=cache_dir, image_size=4)  # Another key.
  assert len(calls) == 30

  files["train/ant/img_0.png"] = png_bytes(np.zeros((6, 5, 3), np.uint8))
  build_folder(files, tmp_path / "imgs", as_zip=True)
  stat = os.stat(path)
  os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
  third = jd.load("folder", path=path, cache_dir=cache_dir)
  assert len(calls) == 45  # The changed source was decoded again.
  assert third.train_images[0].max() == 0


def test_cache_directory_source_notices_added_file(tmp_path):
  files, _ = split_folder()
  path = build_folder(files, tmp_path / "imgs", as_zip=False)
  before = cache.source_id(path)
  with open(os.path.join(path, "train", "ant", "extra.png"), "wb") as f:
    f.write(png_bytes(image_for(50)))
  assert cache.source_id(path) != before


def test_unreadable_cache_entry_is_ignored(tmp_path):
  cache_dir = tmp_path / "cache"
  first = jd.load("digits", cache_dir=str(cache_dir))
  (entry,) = cache_dir.iterdir()
  entry.write_bytes(b"garbage")
  again = jd.load("digits", cache_dir=str(cache_dir))
  np.testing.assert_array_equal(again.train_images, first.train_images)


# ----------------------------------------------------------------------------
# digits, subsample
# ----------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------
# real data (only where a local copy is configured)
# ----------------------------------------------------------------------------


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


def test_caltech_via_tfds_mock_is_resized_without_background(tmp_path):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=6):
    ds = jd.load("caltech101", data_dir=str(tmp_path), cache_dir=str(tmp_path / "c"), image_size=12)
  assert ds.image_shape == (12, 12, 3) and ds.train_images.dtype == np.uint8
  assert ds.num_classes == 101 and "background_google" not in [c.lower() for c in ds.class_names]


def test_import_does_not_load_tensorflow():
  import subprocess
  import sys
  code = ("import sys, jal.data; "
          "print(any(m.split('.')[0] in ('tensorflow', 'tensorflow_datasets') for m in sys.modules))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
