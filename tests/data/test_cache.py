"""Tests of jal.data.cache: a cached dataset is not decoded again, a changed source (an archive's
modification time, a file added to a directory) is, and an unreadable cache entry is ignored."""

from __future__ import annotations

import os

import numpy as np

from helpers import build_folder, image_for, png_bytes, split_folder
from jal import data as jd
from jal.data import cache, local


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
