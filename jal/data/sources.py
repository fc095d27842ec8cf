"""`load`: a named dataset or the user's image folder as a `Dataset`.

For a named dataset the order is: (1) the decoded-array cache, (2) a local
copy under the data directory (``$JAL_DATA_DIR``), (3) tfds. The cache key
names the source actually used (a local copy's path, size and mtime, or
``tfds:<name>``), so the cache is looked up for the source that would be
read, and a changed local copy is decoded again.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np

from jal.data import cache
from jal.data import idx
from jal.data import local
from jal.data import tfds_source
from jal.data.dataset import Arrays, Dataset, channel_stats
from jal.errors import JalError

# Whether a horizontal flip preserves the label.
FLIP = {
    "digits": False,
    "mnist": False,
    "fashion_mnist": True,
    "cifar10": True,
    "cifar100": True,
    "svhn_cropped": False,
    "caltech101": True,
    "folder": True,
    # Segmentation: flips move image and mask together (`jal.data.augment.augment_with_masks`).
    "camvid": True,
    "cityscapes": True,
    "mask_folder": True,
}
# Datasets whose labels are masks [N, H, W] (`jal.data.segmentation`).
SEGMENTATION = ("camvid", "cityscapes", "mask_folder")
KNOWN = tuple(FLIP)

# Colour datasets are decoded as RGB; a folder is grey when all its images are.
_RGB = frozenset({"cifar10", "cifar100", "svhn_cropped", "caltech101"})

# Caltech-101's images differ in size; this is used when image_size is not set.
CALTECH_DEFAULT_SIZE = 64

DIGITS_TEST_FRACTION = 0.2


def load(name: str, *, data_dir: str | None = None, image_size: int | None = None,
         path: str | None = None, cache_dir: str | None = None, split_seed: int = 0,
         classes: tuple[str, ...] | None = None, manual_dir: str | None = None) -> Dataset:
  """Loads a dataset as uint8 arrays, from cache, a local copy or tfds.

  Args:
    name: one of ``digits`` (scikit-learn's 8x8 digits, offline), ``mnist``,
      ``fashion_mnist``, ``cifar10``, ``cifar100``, ``svhn_cropped``,
      ``caltech101``, or ``folder`` (the images at ``path``); for semantic
      segmentation ``camvid`` (SegNet's 11-class CamVid), ``cityscapes``
      (tfds, 19 classes; the validation split is the test split) or
      ``mask_folder`` (``images/`` and ``masks/`` at ``path``, e.g. BDD100K,
      with ``classes``); see `jal.data.segmentation`.
    data_dir: folder holding local copies (e.g. ``mnist/``,
      ``cifar10_jpeg.zip``); defaults to ``$JAL_DATA_DIR``.
    image_size: if given, every image is resized to ``image_size x
      image_size`` (bilinear); for segmentation also ``(height, width)``,
      masks resized nearest-neighbour. Caltech-101 defaults to 64.
    path: for ``folder``: a directory or ``.zip`` with ``train|test/<class>/
      <image>`` or ``<class>/<image>``. For a named dataset: an explicit local
      copy to use instead of searching ``data_dir``.
    cache_dir: where decoded arrays are cached; defaults to ``$JAL_CACHE_DIR``,
      else ``~/.cache/jal``.
    split_seed: seed of the stratified train/test split made for data that
      have none (digits, Caltech-101, a folder without ``train/``/``test/``).
    classes: for ``mask_folder``, the class names in mask-value order.
    manual_dir: for ``cityscapes``, the folder with its two manual-download zips.

  Returns:
    A `Dataset`: images uint8 ``[N, H, W, C]`` (C = 1 for grey, 3 for colour),
    labels int32 in ``[0, num_classes)``, class names in label order, ``flip``,
    and float32 ``[C]`` mean and std of the train images in [0, 1] units.

  Raises:
    JalError: unknown name; bad ``image_size``; ``folder`` without a usable
      ``path``; no local copy and tfds cannot load the data; a malformed
      local copy (bad IDX file, undecodable image, mixed image sizes without
      ``image_size``).
  """
  if name not in FLIP:
    raise JalError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN)}")
  if name in SEGMENTATION:
    return _load_segmentation(name, data_dir, image_size, path, cache_dir, split_seed, classes,
                              manual_dir)
  if image_size is not None:
    if isinstance(image_size, bool) or not isinstance(image_size, (int, np.integer)) or image_size < 1:
      raise JalError(f"image_size must be a positive integer or None, got {image_size!r}")
    image_size = int(image_size)
  if name == "caltech101" and image_size is None:
    image_size = CALTECH_DEFAULT_SIZE
  env_data_dir = data_dir is None
  if data_dir is None:
    data_dir = os.environ.get("JAL_DATA_DIR") or None
  if cache_dir is None:
    cache_dir = cache.default_cache_dir()

  # Which source would be read? Its id keys the cache.
  if name == "folder":
    if not path:
      raise JalError("dataset 'folder' needs a path: set config.dataset.path to a directory or "
                     ".zip of train|test/<class>/<image> or <class>/<image>")
    if not os.path.exists(path):
      raise JalError(f"dataset 'folder': path {path} does not exist")
    source = path
  elif name == "digits":
    source = None
  elif path:
    if not os.path.exists(path):
      raise JalError(f"dataset {name!r}: path {path} does not exist")
    source = path
  else:
    source = local.find_local_copy(name, data_dir)

  if name == "digits":
    import sklearn  # pylint: disable=g-import-not-at-top
    source_id = f"sklearn:load_digits:{sklearn.__version__}"
  elif source is not None:
    source_id = cache.source_id(source)
  else:
    source_id = f"tfds:{name}"
  entry = cache.entry_path(cache_dir, name, cache.make_key(source_id, image_size, split_seed))
  cached = cache.read(entry, name)
  if cached is not None:
    return cached

  if name == "digits":
    arrays = _load_digits(split_seed)
  elif source is not None:
    arrays = _read_local(name, source, image_size, split_seed)
  else:
    try:
      arrays = tfds_source.load_tfds(name, image_size)
    except tfds_source.TfdsUnavailable as e:
      raise JalError(_missing_message(name, data_dir, env_data_dir, str(e))) from None

  if image_size is not None:
    arrays = dataclasses.replace(
        arrays,
        train_images=local.resize_images(arrays.train_images, image_size),
        test_images=local.resize_images(arrays.test_images, image_size))
  ds = _to_dataset(name, arrays)
  cache.write(entry, ds)
  return ds


def _segmentation_size(name: str, image_size) -> tuple[int, int] | None:
  if image_size is None:
    return None
  size = (image_size, image_size) if isinstance(image_size, (int, np.integer)) else image_size
  try:
    size = tuple(int(v) for v in size)
    ok = len(size) == 2 and min(size) >= 1 and not isinstance(image_size, bool)
  except (TypeError, ValueError):
    ok = False
  if not ok:
    raise JalError(f"dataset {name!r}: image_size must be a positive integer or (height, width), "
                   f"got {image_size!r}")
  return size


def _load_segmentation(name, data_dir, image_size, path, cache_dir, split_seed, classes,
                       manual_dir) -> Dataset:
  """A segmentation dataset (`load`'s arguments), through the cache."""
  from jal.data import segmentation  # pylint: disable=g-import-not-at-top
  size = _segmentation_size(name, image_size)
  env_data_dir = data_dir is None
  data_dir = data_dir if data_dir is not None else (os.environ.get("JAL_DATA_DIR") or None)
  cache_dir = cache_dir or cache.default_cache_dir()
  if name == "mask_folder":
    if not path or not classes:
      raise JalError("dataset 'mask_folder' needs config.dataset.path (a folder or .zip with "
                     "images/ and masks/) and config.dataset.classes (the class names in "
                     "mask-value order)")
    source = path
  elif name == "camvid":
    source = path or local.find_local_copy(name, data_dir)
    if source is None:
      raise JalError(_missing_message(name, data_dir, env_data_dir, "CamVid is not in tfds"))
  else:
    source = None
  if source is not None and not os.path.exists(source):
    raise JalError(f"dataset {name!r}: path {source} does not exist")
  source_id = cache.source_id(source) if source else f"tfds:{name}"
  key = cache.make_key(f"{source_id}:classes={list(classes or ())}", list(size or ()) or None,
                       split_seed)
  entry = cache.entry_path(cache_dir, name, key)
  cached = cache.read(entry, name)
  if cached is not None:
    return cached
  if name == "camvid":
    splits = segmentation.read_camvid(source, size, splits=("train", "test"))
    train, test, class_names = splits["train"], splits["test"], segmentation.CAMVID_CLASSES
  elif name == "cityscapes":
    from jal.data import cityscapes  # pylint: disable=g-import-not-at-top
    splits = cityscapes.read_cityscapes(size, manual_dir=manual_dir)
    train, test, class_names = splits["train"], splits["test"], cityscapes.CITYSCAPES_CLASSES
  else:
    train, test = segmentation.split_mask_folder(source, len(classes), size, split_seed)
    class_names = tuple(classes)
  ds = _to_dataset(name, Arrays(train.images, train.masks, test.images, test.masks,
                                tuple(class_names)))
  cache.write(entry, ds)
  return ds


def _read_local(name: str, source: str, image_size: int | None, split_seed: int) -> Arrays:
  if name in ("mnist", "fashion_mnist"):
    if not os.path.isdir(source):
      raise JalError(f"local copy of {name} at {source} must be a folder of IDX files "
                     "(train-images-idx3-ubyte[.gz], ...)")
    return idx.read_idx_dir(source)
  exclude = ("BACKGROUND_Google",) if name == "caltech101" else ()
  mode = "RGB" if name in _RGB else None
  return local.read_image_folder(source, image_size=image_size, split_seed=split_seed,
                                 mode=mode, exclude_classes=exclude)


def _load_digits(split_seed: int) -> Arrays:
  from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top
  bunch = load_digits()
  images = np.round(bunch.images * 255.0 / 16.0).clip(0, 255).astype(np.uint8)[..., None]
  labels = bunch.target.astype(np.int32)
  train_idx, test_idx = local.stratified_split(labels, DIGITS_TEST_FRACTION, split_seed)
  return Arrays(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx],
                tuple(str(i) for i in range(10)))


def _to_dataset(name: str, arrays: Arrays) -> Dataset:
  n_classes = len(arrays.class_names)
  masks = np.ndim(arrays.train_labels) == 3
  for split, labels in (("train", arrays.train_labels), ("test", arrays.test_labels)):
    values = labels[labels != 255] if masks else labels  # void pixels are 255
    if values.size and (values.min() < 0 or values.max() >= n_classes):
      raise JalError(f"dataset {name!r}: {split} labels outside [0, {n_classes})")
  if arrays.train_images.shape[0] == 0:
    raise JalError(f"dataset {name!r} has no train images")
  mean, std = channel_stats(arrays.train_images)
  return Dataset(
      name=name,
      train_images=np.ascontiguousarray(arrays.train_images, np.uint8),
      train_labels=np.asarray(arrays.train_labels, np.uint8 if masks else np.int32),
      test_images=np.ascontiguousarray(arrays.test_images, np.uint8),
      test_labels=np.asarray(arrays.test_labels, np.uint8 if masks else np.int32),
      class_names=tuple(arrays.class_names),
      flip=FLIP[name],
      mean=mean,
      std=std,
  )


def _missing_message(name: str, data_dir: str | None, env_data_dir: bool, reason: str) -> str:
  looked = ", ".join(local.LOCAL_CANDIDATES[name])
  if data_dir:
    where = f"JAL_DATA_DIR={data_dir}" if env_data_dir else f"data_dir={data_dir}"
    local_part = f"no local copy in {where} (looked for {looked})"
  else:
    local_part = f"no local copy (JAL_DATA_DIR is not set; would look there for {looked})"
  return (f"dataset {name!r} not found: {local_part} and tfds could not load it ({reason}); "
          "set JAL_DATA_DIR to a folder holding a copy, or run where tfds can download it")


def subsample(ds: Dataset, max_train: int | None, max_test: int | None, seed: int) -> Dataset:
  """A seeded, stratified subset of the train and/or test split.

  Masks (segmentation) have no class per image: their subset is uniform.
  Otherwise each class keeps a share of the budget proportional to its size (largest
  remainders get the leftover slots); the chosen indices are sorted so the
  original order is kept. Mean and std are recomputed from the new train set.

  Args:
    ds: the dataset.
    max_train: the most train images to keep, or None to keep all.
    max_test: the most test images to keep, or None to keep all.
    seed: seed for ``np.random.default_rng`` (train and test use independent
      streams derived from it).

  Returns:
    A new `Dataset` with train images ``[min(N, max_train), H, W, C]`` uint8
    and so on; everything else unchanged.

  Raises:
    JalError: if ``max_train`` or ``max_test`` is not None and below 1.
  """
  for label, value in (("max_train", max_train), ("max_test", max_test)):
    if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
      raise JalError(f"subsample: {label} must be a positive integer or None, got {value!r}")
  train_idx = _stratified_subset(ds.train_labels, max_train, np.random.default_rng([seed, 0]))
  test_idx = _stratified_subset(ds.test_labels, max_test, np.random.default_rng([seed, 1]))
  train_images = ds.train_images[train_idx]
  mean, std = channel_stats(train_images)
  return dataclasses.replace(
      ds,
      train_images=train_images,
      train_labels=ds.train_labels[train_idx],
      test_images=ds.test_images[test_idx],
      test_labels=ds.test_labels[test_idx],
      mean=mean,
      std=std,
  )


def _stratified_subset(labels: np.ndarray, limit: int | None, rng: np.random.Generator) -> np.ndarray:
  n = labels.shape[0]
  if limit is None or limit >= n:
    return np.arange(n)
  if labels.ndim > 1:  # masks: no class per image to stratify by; a uniform subset
    return np.sort(rng.choice(n, size=limit, replace=False))
  classes, counts = np.unique(labels, return_counts=True)
  quota = counts * (limit / n)
  take = np.floor(quota).astype(np.int64)
  leftover = int(limit - take.sum())
  # Largest remainders first; ties go to the lower class index (stable sort).
  order = np.argsort(-(quota - take), kind="stable")
  take[order[:leftover]] += 1
  chosen = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
            for c, k in zip(classes, take)]
  return np.sort(np.concatenate(chosen))
