"""MNIST-style IDX files (MNIST, Fashion-MNIST), plain or gzipped."""

from __future__ import annotations

import gzip
import os

import numpy as np

from jal.data.dataset import Arrays
from jal.data.local import one_line
from jal.errors import JalError

# IDX element types (third byte of the magic number) -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str) -> np.ndarray:
  """Reads one IDX file (plain or gzipped, judged by the ``.gz`` suffix).

  The header is parsed properly: two zero bytes, an element-type byte, the
  number of dimensions, then one big-endian uint32 per dimension.

  Args:
    path: the file.

  Returns:
    An array with the dimensions from the header, in native byte order
    (uint8 for MNIST images ``[N, 28, 28]`` and labels ``[N]``).

  Raises:
    JalError: if the file cannot be read, the magic number is wrong, or the
      file is shorter or longer than its header says.
  """
  try:
    if path.endswith(".gz"):
      with gzip.open(path, "rb") as f:
        raw = f.read()
    else:
      with open(path, "rb") as f:
        raw = f.read()
  except (OSError, EOFError, gzip.BadGzipFile) as e:
    raise JalError(f"cannot read IDX file {path}: {one_line(e)}; replace it with a good copy") from None
  if len(raw) < 4:
    raise JalError(f"IDX file {path} is truncated ({len(raw)} bytes, no header); replace it with a good copy")
  zero0, zero1, type_code, ndim = raw[0], raw[1], raw[2], raw[3]
  if zero0 != 0 or zero1 != 0 or type_code not in _IDX_DTYPES or ndim == 0:
    raise JalError(f"{path} is not an IDX file (bad magic number 0x{raw[:4].hex()}); "
                   "replace it with a good copy")
  header_len = 4 + 4 * ndim
  if len(raw) < header_len:
    raise JalError(f"IDX file {path} is truncated inside its header; replace it with a good copy")
  dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
  dtype = _IDX_DTYPES[type_code]
  expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
  actual = len(raw) - header_len
  if actual != expected:
    what = "truncated" if actual < expected else "longer than its header says"
    raise JalError(f"IDX file {path} is {what} (header {dims} needs {expected} data bytes, "
                   f"found {actual}); replace it with a good copy")
  data = np.frombuffer(raw, dtype, offset=header_len).reshape(dims)
  return data.astype(dtype.newbyteorder("="))


def read_idx_dir(directory: str) -> Arrays:
  """Reads the four MNIST-style IDX files in ``directory``.

  Each of ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` may be plain or
  ``.gz``.

  Args:
    directory: the folder holding the files.

  Returns:
    `Arrays` with uint8 images ``[N, H, W, 1]``, int32 labels and class names
    ``'0'`` .. ``'<max label>'``.

  Raises:
    JalError: if a file is missing or malformed, or images and labels disagree.
  """
  arrays = {}
  for key, stem in IDX_FILES.items():
    path = _idx_path(directory, stem)
    if path is None:
      raise JalError(f"incomplete IDX copy in {directory}: missing {stem} (or {stem}.gz); "
                     "the folder needs all of " + ", ".join(IDX_FILES.values()))
    arrays[key] = read_idx(path)
  for split in ("train", "test"):
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1:
      raise JalError(f"IDX files in {directory}: expected uint8 images [N, H, W] and labels [N], "
                     f"got {images.dtype} {images.shape} and {labels.shape} for {split}")
    if images.shape[0] != labels.shape[0]:
      raise JalError(f"IDX files in {directory}: {split} has {images.shape[0]} images but "
                     f"{labels.shape[0]} labels")
  num_classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
  return Arrays(
      train_images=arrays["train_images"][..., None],
      train_labels=arrays["train_labels"].astype(np.int32),
      test_images=arrays["test_images"][..., None],
      test_labels=arrays["test_labels"].astype(np.int32),
      class_names=tuple(str(i) for i in range(num_classes)),
  )


def _idx_path(directory: str, stem: str) -> str | None:
  for name in (stem, stem + ".gz"):
    path = os.path.join(directory, name)
    if os.path.isfile(path):
      return path
  return None
