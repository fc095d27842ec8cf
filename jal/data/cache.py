"""A cache of decoded datasets: one ``.npz`` per dataset and key.

Decoding 60,000 JPEGs takes seconds; reading the decoded arrays back takes a
fraction of that. The key covers everything the arrays depend on: where they
came from (path, size and mtime of a local copy, or ``tfds:<name>``), the image
size and the split seed, plus a format version. A changed source gets a new key
and is decoded again. Files are written to a temporary name first and then
renamed (``os.replace``), so a crash never leaves a half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import zipfile

import numpy as np

from jal.data.dataset import Dataset

# Bump when the decoding or the file layout changes, to invalidate old entries.
FORMAT_VERSION = 1

_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels", "mean", "std")

log = logging.getLogger(__name__)


def default_cache_dir() -> str:
  """The cache folder used when `jal.data.load` gets no ``cache_dir``.

  Returns:
    ``$JAL_CACHE_DIR`` if set, else ``~/.cache/jal``.
  """
  return os.environ.get("JAL_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "jal")


def source_id(path: str) -> str:
  """Identifies a local copy by resolved path, size and modification time.

  For a directory every file below it counts (relative path, size, mtime), so
  adding, removing or replacing an image changes the id.

  Args:
    path: a file or a directory.

  Returns:
    A string that changes whenever the source changes.
  """
  real = os.path.realpath(path)
  if os.path.isfile(real):
    st = os.stat(real)
    return f"file:{real}:{st.st_size}:{st.st_mtime_ns}"
  digest = hashlib.sha256()
  for root, dirs, files in os.walk(real):
    dirs.sort()
    for name in sorted(files):
      full = os.path.join(root, name)
      try:
        st = os.stat(full)
      except OSError:
        continue
      digest.update(f"{os.path.relpath(full, real)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
  return f"dir:{real}:{digest.hexdigest()}"


def make_key(source: str, image_size: int | None, split_seed: int) -> str:
  """The cache key for one way of loading a dataset.

  Args:
    source: a `source_id`, ``tfds:<name>`` or similar.
    image_size: the resize target, or None.
    split_seed: the seed of a split made while loading.

  Returns:
    24 hex digits; any change of the inputs (or of `FORMAT_VERSION`) changes it.
  """
  blob = json.dumps({"v": FORMAT_VERSION, "source": source, "image_size": image_size,
                     "split_seed": split_seed}, sort_keys=True)
  return hashlib.sha256(blob.encode()).hexdigest()[:24]


def entry_path(cache_dir: str, name: str, key: str) -> str:
  """Where the entry for dataset ``name`` with ``key`` lives.

  Args:
    cache_dir: the cache folder.
    name: the dataset name.
    key: from `make_key`.

  Returns:
    ``<cache_dir>/<name>-<key>.npz``.
  """
  return os.path.join(cache_dir, f"{name}-{key}.npz")


def read(path: str, name: str) -> Dataset | None:
  """Reads a cache entry.

  Args:
    path: the entry's file (see `entry_path`).
    name: the dataset name to put in the returned `Dataset`.

  Returns:
    The `Dataset`, or None when the entry is missing or unreadable (a broken
    entry is logged and ignored, so the data are decoded again).
  """
  if not os.path.isfile(path):
    return None
  try:
    with np.load(path, allow_pickle=False) as z:
      arrays = {k: z[k] for k in _ARRAYS}
      class_names = tuple(str(c) for c in z["class_names"])
      flip = bool(z["flip"])
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
    log.warning("ignoring unreadable cache entry %s: %s", path, e)
    return None
  return Dataset(
      name=name,
      train_images=arrays["train_images"],
      train_labels=arrays["train_labels"],
      test_images=arrays["test_images"],
      test_labels=arrays["test_labels"],
      class_names=class_names,
      flip=flip,
      mean=arrays["mean"],
      std=arrays["std"],
  )


def write(path: str, ds: Dataset) -> bool:
  """Writes ``ds`` to ``path`` atomically (temporary file, then ``os.replace``).

  A cache that cannot be written (read-only disk, full disk) is not fatal: the
  failure is logged and False returned.

  Args:
    path: the entry's file (see `entry_path`).
    ds: the dataset.

  Returns:
    Whether the entry was written.
  """
  directory = os.path.dirname(path) or "."
  tmp = None
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as f:
      np.savez(
          f,
          train_images=ds.train_images,
          train_labels=ds.train_labels,
          test_images=ds.test_images,
          test_labels=ds.test_labels,
          class_names=np.array(ds.class_names, dtype=str),
          flip=np.array(ds.flip),
          mean=ds.mean,
          std=ds.std,
      )
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the usual mode.
    os.replace(tmp, path)
    return True
  except OSError as e:
    log.warning("could not write dataset cache %s: %s", path, e)
    if tmp is not None and os.path.exists(tmp):
      try:
        os.remove(tmp)
      except OSError:
        pass
    return False
