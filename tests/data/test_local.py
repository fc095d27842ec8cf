"""Tests of jal.data.local, the reader of image folders (directories and zips): the train/test
layout, grey and colour mixed, a seeded stratified split of a folder of classes only, Caltech's
layout without its background class, resizing images of mixed sizes, and a corrupt image named in a
one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import build_folder, image_for, png_bytes, split_folder
from jal import data as jd
from jal.errors import JalError


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
