"""Local copies of datasets: finding them, and reading image folders.

IDX files (MNIST, Fashion-MNIST) are read by `jal.data.idx`.

An image folder is a directory or a ``.zip`` holding either

* ``train/<class>/<image>`` and ``test/<class>/<image>`` (an official split), or
* ``<class>/<image>`` (no split: a seeded, stratified one is made here),

optionally below one wrapper directory (e.g. Caltech-101's
``101_ObjectCategories/``). Class names sorted alphabetically give the label
order. Images are decoded with PIL on a thread pool (PIL releases the GIL while
decoding, so threads scale with cores without the cost of processes).
"""

from __future__ import annotations

import concurrent.futures
import io
import os
import zipfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jal.data.dataset import Arrays
from jal.errors import JalError

IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})

# Where a local copy of each named dataset may sit under the data directory,
# in order of preference. Entries ending in "/" are directories.
LOCAL_CANDIDATES = {
    "mnist": ("mnist/",),
    "fashion_mnist": ("fashion_mnist/",),
    "cifar10": ("cifar10_jpeg.zip", "cifar10.zip", "cifar10/"),
    "cifar100": ("cifar100.zip", "cifar100/"),
    "svhn_cropped": ("svhn_cropped.zip", "svhn_cropped/"),
    "caltech101": ("caltech101_160px.zip", "caltech101.zip", "caltech101/"),
    "camvid": ("camvid.zip", "camvid/"),
}

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"})


# ----------------------------------------------------------------------------
# Finding a local copy
# ----------------------------------------------------------------------------


def find_local_copy(name: str, data_dir: str | None) -> str | None:
  """The first existing local copy of dataset ``name`` under ``data_dir``.

  Args:
    name: a dataset name with an entry in `LOCAL_CANDIDATES`.
    data_dir: the data folder, or None (then nothing is found).

  Returns:
    The path of the copy (a ``.zip`` file or a directory), or None.
  """
  if not data_dir:
    return None
  for candidate in LOCAL_CANDIDATES[name]:
    path = os.path.join(data_dir, candidate.rstrip("/"))
    if candidate.endswith("/") and os.path.isdir(path):
      return path
    if not candidate.endswith("/") and os.path.isfile(path):
      return path
  return None


# ----------------------------------------------------------------------------
# Image folders (directory or zip)
# ----------------------------------------------------------------------------


class _Source:
  """Lists image files and reads their bytes from a directory or a zip.

  Zip members are read on the calling thread only (ZipFile is not documented
  as thread safe); files in a directory may be read from any thread.
  """

  def __init__(self, path: str):
    self.path = path
    self.is_zip = os.path.isfile(path)
    self._zip = None
    if self.is_zip:
      try:
        self._zip = zipfile.ZipFile(path)
      except (OSError, zipfile.BadZipFile) as e:
        raise JalError(f"cannot open {path} as a zip archive: {one_line(e)}; "
                       "replace it with a good copy") from None

  def close(self):
    if self._zip is not None:
      self._zip.close()

  def files(self) -> list[str]:
    """Relative '/'-separated paths of all image files, sorted."""
    if self.is_zip:
      names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
    else:
      names = []
      for root, dirs, files in os.walk(self.path):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        rel = os.path.relpath(root, self.path)
        for f in files:
          names.append(f if rel == "." else os.path.join(rel, f).replace(os.sep, "/"))
    return sorted(n for n in names if _is_image_name(n))

  def read(self, member: str) -> bytes:
    try:
      if self.is_zip:
        return self._zip.read(member)
      with open(os.path.join(self.path, member), "rb") as f:
        return f.read()
    except (OSError, zipfile.BadZipFile, EOFError) as e:  # e.g. a bad CRC
      where = "archive" if self.is_zip else "folder"
      raise JalError(f"cannot read '{member}' in {where} {self.path} ({one_line(e)}); "
                     "remove or replace that file") from None


def _is_image_name(name: str) -> bool:
  parts = name.split("/")
  if any(p.startswith(".") or p == "__MACOSX" for p in parts):
    return False
  return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def decode_image(data: bytes, *, mode: str | None, image_size: int | None) -> np.ndarray:
  """Decodes one encoded image with PIL.

  Args:
    data: the encoded file (PNG, JPEG, ...).
    mode: ``"RGB"`` to force colour, ``"L"`` to force grey, or None to keep
      greyscale images grey (1 channel) and make everything else RGB.
    image_size: if given, resize to ``image_size x image_size`` (bilinear).

  Returns:
    uint8 array ``[H, W, C]`` with C = 1 (grey) or 3 (RGB).

  Raises:
    OSError, ValueError, SyntaxError or `PIL.Image.DecompressionBombError`
    when the data cannot be decoded (the caller names the file).
  """
  with Image.open(io.BytesIO(data)) as im:
    im.load()
    target = mode or ("L" if im.mode in _GREY_MODES else "RGB")
    if im.mode != target:
      if im.mode in ("I", "I;16", "I;16B", "I;16L", "F") and target == "L":
        # Deep greyscale: scale to 8 bits rather than clip.
        arr = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if im.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        im = Image.fromarray(np.clip(np.round(arr * 255.0 / hi), 0, 255).astype(np.uint8), "L")
      else:
        im = im.convert(target)
    if image_size is not None and im.size != (image_size, image_size):
      im = im.resize((image_size, image_size), Image.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
  if arr.ndim == 2:
    arr = arr[..., None]
  return arr


def _decode_all(source: _Source, members: Sequence[str], *, mode: str | None,
                image_size: int | None, num_threads: int | None = None) -> list[np.ndarray]:
  """Decodes ``members`` in order on a thread pool.

  Work goes out in chunks of a few hundred images. For a zip the main thread
  reads each chunk's bytes and hands them to the pool, so reading overlaps
  with decoding; for a directory the workers read the files themselves.
  """
  if num_threads is None:
    num_threads = os.cpu_count() or 1
  decode = decode_image  # Looked up at call time, so tests can count calls.

  def work(chunk: Sequence[str], blobs: Sequence[bytes] | None) -> list[np.ndarray]:
    out = []
    for i, member in enumerate(chunk):
      data = blobs[i] if blobs is not None else source.read(member)
      try:
        out.append(decode(data, mode=mode, image_size=image_size))
      except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        where = "archive" if source.is_zip else "folder"
        raise JalError(f"cannot decode image '{member}' in {where} {source.path} "
                       f"({one_line(e)}); remove or replace that file") from None
    return out

  def blobs_for(chunk):
    return [source.read(m) for m in chunk] if source.is_zip else None

  chunk_size = 256
  chunks = [members[i:i + chunk_size] for i in range(0, len(members), chunk_size)]
  results: list[np.ndarray] = []
  if num_threads <= 1 or len(chunks) <= 1:
    for chunk in chunks:
      results.extend(work(chunk, blobs_for(chunk)))
    return results
  with concurrent.futures.ThreadPoolExecutor(num_threads, thread_name_prefix="jal-decode") as pool:
    futures = []
    try:
      for chunk in chunks:
        futures.append(pool.submit(work, chunk, blobs_for(chunk)))
      for f in futures:
        results.extend(f.result())
    except BaseException:
      for f in futures:
        f.cancel()
      raise
  return results


def is_image_name(name: str) -> bool:
  """Whether a '/'-separated path names an image file jal reads (not hidden, a known extension)."""
  return _is_image_name(name)


def image_files(path: str) -> list[str]:
  """The image files below a directory or in a zip: relative '/'-separated paths, sorted.

  Raises:
    JalError: a zip that cannot be opened.
  """
  source = _Source(path)
  try:
    return source.files()
  finally:
    source.close()


def decode_files(path: str, members: Sequence[str], *, mode: str | None,
                 image_size: int | None) -> list[np.ndarray]:
  """Decodes ``members`` of a directory or zip in order, on a thread pool.

  Args:
    path: the directory or zip the members are relative to.
    members: '/'-separated relative paths.
    mode: as `decode_image`.
    image_size: as `decode_image`.

  Returns:
    One uint8 ``[H, W, C]`` array per member.

  Raises:
    JalError: naming a member that cannot be read or decoded.
  """
  source = _Source(path)
  try:
    return _decode_all(source, list(members), mode=mode, image_size=image_size)
  finally:
    source.close()


def _strip_wrappers(files: list[str]) -> tuple[list[str], str]:
  """Removes wrapper directories every file sits in (e.g. ``101_ObjectCategories/``).

  A directory is a wrapper when every image lies below it, it is not a split
  name, and removing it still leaves at least ``class/image``.
  """
  prefix = ""
  while files:
    first = {f.split("/", 1)[0] for f in files}
    if len(first) != 1 or "/" not in files[0]:
      break
    top = next(iter(first))
    if top in ("train", "test") or any(f.count("/") < 2 for f in files):
      break
    files = [f.split("/", 1)[1] for f in files]
    prefix += top + "/"
  return files, prefix


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int,
                     min_test: int = 1) -> tuple[np.ndarray, np.ndarray]:
  """A seeded split with the same test fraction in every class.

  Every class with at least two examples gets ``max(min_test,
  round(test_fraction * n))`` test examples, but always keeps one for training.

  Args:
    labels: int array ``[N]``.
    test_fraction: share of each class that goes to the test split.
    seed: seed for ``np.random.default_rng``.
    min_test: the fewest test examples for a class with two or more examples.

  Returns:
    ``(train_idx, test_idx)``: sorted int64 index arrays into ``labels``.
  """
  rng = np.random.default_rng(seed)
  train_idx, test_idx = [], []
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    n = idx.size
    n_test = 0 if n < 2 else min(n - 1, max(min_test, int(round(test_fraction * n))))
    perm = rng.permutation(idx)
    test_idx.append(perm[:n_test])
    train_idx.append(perm[n_test:])
  return (np.sort(np.concatenate(train_idx)).astype(np.int64),
          np.sort(np.concatenate(test_idx)).astype(np.int64))


def read_image_folder(path: str, *, image_size: int | None = None, split_seed: int = 0,
                      mode: str | None = None, exclude_classes: Sequence[str] = (),
                      test_fraction: float = 0.2) -> Arrays:
  """Reads a labelled image folder (a directory or a ``.zip``).

  Layouts (optionally below single wrapper directories): ``train/<class>/<img>``
  plus ``test/<class>/<img>``, or ``<class>/<img>`` which is split here with
  `stratified_split` (``test_fraction`` per class, at least one test image per
  class, seeded by ``split_seed``). Labels follow the sorted class names.

  Args:
    path: directory or zip file.
    image_size: if given, every image is resized to ``image_size x image_size``
      (bilinear); otherwise all images must have the same size.
    split_seed: seed for the split when the folder has none.
    mode: ``"RGB"`` to force 3 channels; None gives 1 channel when every image
      is greyscale, else 3.
    exclude_classes: class folder names to leave out (e.g. ``BACKGROUND_Google``).
    test_fraction: test share per class when splitting here.

  Returns:
    `Arrays` with uint8 images ``[N, H, W, C]`` and int32 labels.

  Raises:
    JalError: the path is missing, the layout is not recognised, an image cannot
      be decoded (the message names it), or sizes differ without ``image_size``.
  """
  if not os.path.exists(path):
    raise JalError(f"image folder {path} does not exist")
  if os.path.isfile(path) and not zipfile.is_zipfile(path):
    raise JalError(f"{path} is neither a directory nor a .zip archive")
  source = _Source(path)
  try:
    files, prefix = _strip_wrappers(source.files())
    if not files:
      raise JalError(f"no images found in {path} (expected <class>/<image> or "
                     "train|test/<class>/<image>)")
    excluded = set(exclude_classes)
    tops = {f.split("/", 1)[0] for f in files}
    if "train" in tops or "test" in tops:
      if not {"train", "test"} <= tops:
        missing = "test" if "train" in tops else "train"
        raise JalError(f"{path} has a {({'train', 'test'} - {missing}).pop()}/ folder but no "
                       f"{missing}/ folder; give both, or drop the split level "
                       "(<class>/<image>) to get a seeded split")
      by_split = {"train": [], "test": []}
      for f in files:
        parts = f.split("/")
        if parts[0] not in by_split:
          continue  # e.g. a val/ folder: not used.
        if len(parts) != 3:
          raise JalError(f"unexpected file '{f}' in {path}: expected <split>/<class>/<image>")
        if parts[1] not in excluded:
          by_split[parts[0]].append((parts[1], f))
      class_names = tuple(sorted({c for c, _ in by_split["train"]}))
      extra = sorted({c for c, _ in by_split["test"]} - set(class_names))
      if extra:
        raise JalError(f"{path}: test/ has classes with no train/ images: {', '.join(extra[:5])}")
      index = {c: i for i, c in enumerate(class_names)}
      train_members = [f for _, f in by_split["train"]]
      test_members = [f for _, f in by_split["test"]]
      train_labels = np.array([index[c] for c, _ in by_split["train"]], np.int32)
      test_labels = np.array([index[c] for c, _ in by_split["test"]], np.int32)
    else:
      pairs = []
      for f in files:
        parts = f.split("/")
        if len(parts) != 2:
          raise JalError(f"unexpected file '{f}' in {path}: expected <class>/<image> or "
                         "train|test/<class>/<image>")
        if parts[0] not in excluded:
          pairs.append((parts[0], f))
      class_names = tuple(sorted({c for c, _ in pairs}))
      index = {c: i for i, c in enumerate(class_names)}
      labels = np.array([index[c] for c, _ in pairs], np.int32)
      train_idx, test_idx = stratified_split(labels, test_fraction, split_seed)
      train_members = [pairs[i][1] for i in train_idx]
      test_members = [pairs[i][1] for i in test_idx]
      train_labels, test_labels = labels[train_idx], labels[test_idx]
    if len(class_names) < 2:
      raise JalError(f"{path} has {len(class_names)} class folder(s); need at least 2")
    members = [prefix + m for m in train_members + test_members]
    images = _decode_all(source, members, mode=mode, image_size=image_size)
  finally:
    source.close()

  sizes: dict[tuple[int, int], str] = {}
  for m, im in zip(members, images):
    sizes.setdefault(im.shape[:2], m)
  if len(sizes) > 1:
    listed = ", ".join(f"{h}x{w} (e.g. '{m}')" for (h, w), m in list(sizes.items())[:4])
    more = f" and {len(sizes) - 4} more" if len(sizes) > 4 else ""
    raise JalError(f"images in {path} have different sizes: {listed}{more}; "
                   "set config.dataset.image_size to resize them all to one size")
  channels = {im.shape[2] for im in images}
  if len(channels) > 1:  # Some grey, some colour: make all RGB.
    images = [np.repeat(im, 3, axis=2) if im.shape[2] == 1 else im for im in images]
  stacked = _stack(images)
  n_train = len(train_members)
  return Arrays(stacked[:n_train], train_labels, stacked[n_train:], test_labels, class_names)


def _stack(images: list[np.ndarray]) -> np.ndarray:
  out = np.empty((len(images),) + images[0].shape, np.uint8)
  for i, im in enumerate(images):
    out[i] = im
  return out


def resize_images(images: np.ndarray, image_size: int) -> np.ndarray:
  """Resizes a batch of images with PIL (bilinear).

  Args:
    images: uint8 ``[N, H, W, C]`` with C in {1, 3}.
    image_size: output height and width.

  Returns:
    uint8 ``[N, image_size, image_size, C]`` (the input itself if already that size).
  """
  if images.shape[1:3] == (image_size, image_size):
    return images
  out = np.empty((images.shape[0], image_size, image_size, images.shape[3]), np.uint8)
  for i, im in enumerate(images):
    out[i] = resize_one(im, image_size)
  return out


def resize_one(image: np.ndarray, image_size: int) -> np.ndarray:
  """Resizes one image with PIL (bilinear).

  Args:
    image: uint8 ``[H, W, C]`` with C in {1, 3}.
    image_size: output height and width.

  Returns:
    uint8 ``[image_size, image_size, C]``.
  """
  pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
  arr = np.asarray(pil.resize((image_size, image_size), Image.BILINEAR), np.uint8)
  return arr[..., None] if arr.ndim == 2 else arr


def one_line(e: BaseException, limit: int = 200) -> str:
  """An exception's message for use inside a one-line `JalError`.

  Args:
    e: the exception.
    limit: the most characters to keep.

  Returns:
    The message with all whitespace runs (newlines included) collapsed to one
    space, cut to ``limit`` characters; the type name if the message is empty.
  """
  text = " ".join(str(e).split()) or type(e).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."
