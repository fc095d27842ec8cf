"""Loading named datasets through TensorFlow Datasets (tfds).

``tensorflow_datasets`` (and through it TensorFlow) is imported only inside
`fetch_arrays`, i.e. only when no cache entry and no local copy exist: the
import is slow and most runs never need it.

Offline behaviour. Measured with tfds 4.9.10 on a machine without network:
``tfds.load(..., download=True)`` for data that is not prepared does not fail
fast. Its downloader mounts ``urllib3`` ``Retry(total=10, backoff_factor=0.2)``
on every URL and tfds then retries whole downloads again, logging a
``NameResolutionError`` warning per attempt for minutes. So `fetch_arrays`
first calls ``tfds.load(..., download=False)``, which reads data that are
already prepared (or mocked by ``tfds.testing.mock_data``) and fails at once
otherwise. Only when that fails *and* a quick connectivity probe (a TCP
connection to ``storage.googleapis.com:443`` within a few seconds, on a daemon
thread so a hanging DNS lookup cannot block us) succeeds do we let tfds
download and prepare the data.
"""

from __future__ import annotations

import os
import socket
import threading

import numpy as np

from jal.data import local
from jal.data.dataset import Arrays

# Probed before letting tfds download anything (see the module docstring).
CONNECTIVITY_HOST = ("storage.googleapis.com", 443)
CONNECTIVITY_TIMEOUT_S = 3.0

# Class names tfds uses for Caltech-101's clutter class; it is left out, as in
# the usual 101-class task.
_BACKGROUND = "background_google"

# Examples per batch when reading fixed-size datasets out of tfds.
_BATCH = 4096


class TfdsUnavailable(Exception):
  """tfds could not provide the data; ``str(e)`` is a short, one-line reason."""


def tfds_data_dir() -> str | None:
  """The data folder handed to tfds.

  Returns:
    ``$TFDS_DATA_DIR`` if set, else None (tfds' default,
    ``~/tensorflow_datasets``).
  """
  return os.environ.get("TFDS_DATA_DIR") or None


def network_available(host: tuple[str, int] = CONNECTIVITY_HOST,
                      timeout: float = CONNECTIVITY_TIMEOUT_S) -> bool:
  """Whether a TCP connection to ``host`` can be opened within ``timeout`` seconds.

  The attempt runs on a daemon thread so that a DNS lookup that hangs (which
  ``socket`` timeouts do not cover) cannot block the caller.

  Args:
    host: ``(hostname, port)``.
    timeout: seconds to wait in all.

  Returns:
    True if the connection was made in time.
  """
  result = []

  def attempt():
    try:
      with socket.create_connection(host, timeout=timeout):
        result.append(True)
    except OSError:
      result.append(False)

  thread = threading.Thread(target=attempt, name="jal-net-probe", daemon=True)
  thread.start()
  thread.join(timeout)
  return bool(result and result[0])


def fetch_arrays(name: str, data_dir: str | None, image_size: int | None) -> Arrays:
  """Loads ``name``'s train and test splits with tfds.

  Tries prepared data first (``download=False``); downloads only when that
  fails and the network is reachable.

  Args:
    name: a tfds dataset name (``mnist``, ``svhn_cropped``, ``caltech101``, ...).
    data_dir: tfds data directory, or None for tfds' default.
    image_size: resize target. Required for datasets whose images differ in
      size (caltech101), which are read one image at a time; other datasets are
      returned at their native size.

  Returns:
    `Arrays` with uint8 images ``[N, H, W, C]``, int32 labels and the class
    names from the dataset's ``label`` feature.

  Raises:
    Exception: whatever tfds raises (not found, download error, ...) and
      `TfdsUnavailable` when the data are not prepared and there is no network.
  """
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  def load(download: bool):
    kwargs = dict(split=["train", "test"], as_supervised=True, data_dir=data_dir,
                  download=download, with_info=True)
    if name != "caltech101":
      # Fixed-size batches, concatenated below, rather than batch_size=-1:
      # with -1 tfds batches by info.splits.total_num_examples, which is 0 when
      # split sizes are unknown (e.g. under tfds.testing.mock_data), and then
      # falls back to sys.maxsize, which makes TF 2.21 abort the whole process
      # (std::length_error in vector::reserve) instead of raising.
      kwargs["batch_size"] = _BATCH
    return tfds.load(name, **kwargs)

  try:
    (train, test), info = load(download=False)
  except Exception as not_prepared:  # pylint: disable=broad-except
    if not network_available():
      where = data_dir or "the default tfds data dir"
      detail = local.one_line(not_prepared, 100)
      # tfds' usual "could not find data in ..." adds nothing; anything else might.
      detail = "" if "could not find data" in detail else f" ({detail})"
      raise TfdsUnavailable(
          f"not prepared in {where}{detail} and no network to download it "
          f"({CONNECTIVITY_HOST[0]} unreachable)") from None
    (train, test), info = load(download=True)

  names = tuple(info.features["label"].names)
  if name == "caltech101":
    if image_size is None:
      raise ValueError("caltech101 needs an image_size")
    (train_x, train_y), (test_x, test_y) = (
        _iterate_resized(tfds.as_numpy(split), image_size) for split in (train, test))
  else:
    (train_x, train_y), (test_x, test_y) = (
        _concatenate(tfds.as_numpy(split)) for split in (train, test))
  arrays = Arrays(
      train_images=np.asarray(train_x, np.uint8),
      train_labels=np.asarray(train_y).astype(np.int32),
      test_images=np.asarray(test_x, np.uint8),
      test_labels=np.asarray(test_y).astype(np.int32),
      class_names=names,
  )
  return _drop_background(arrays)


def _concatenate(batches) -> tuple[np.ndarray, np.ndarray]:
  images, labels = [], []
  for image_batch, label_batch in batches:
    images.append(np.asarray(image_batch, np.uint8))
    labels.append(np.asarray(label_batch))
  if not images:
    raise ValueError("the split is empty")
  return np.concatenate(images), np.concatenate(labels)


def _iterate_resized(examples, image_size: int) -> tuple[np.ndarray, np.ndarray]:
  images, labels = [], []
  for image, label in examples:
    image = np.asarray(image, np.uint8)
    if image.ndim == 2:
      image = image[..., None]
    if image.shape[-1] == 1:
      image = np.repeat(image, 3, axis=-1)
    images.append(local.resize_one(image, image_size))
    labels.append(int(label))
  if not images:
    return np.zeros((0, image_size, image_size, 3), np.uint8), np.zeros((0,), np.int32)
  return np.stack(images), np.asarray(labels, np.int32)


def _drop_background(arrays: Arrays) -> Arrays:
  """Removes a ``BACKGROUND_Google`` class (if any) and renumbers the labels."""
  lowered = [n.lower() for n in arrays.class_names]
  if _BACKGROUND not in lowered:
    return arrays
  drop = lowered.index(_BACKGROUND)
  remap = np.array([i - (i > drop) for i in range(len(lowered))], np.int32)
  keep_train = arrays.train_labels != drop
  keep_test = arrays.test_labels != drop
  return Arrays(
      train_images=arrays.train_images[keep_train],
      train_labels=remap[arrays.train_labels[keep_train]],
      test_images=arrays.test_images[keep_test],
      test_labels=remap[arrays.test_labels[keep_test]],
      class_names=tuple(n for i, n in enumerate(arrays.class_names) if i != drop),
  )


def load_tfds(name: str, image_size: int | None) -> Arrays:
  """`fetch_arrays` with every failure turned into `TfdsUnavailable`.

  Args:
    name: the tfds dataset name.
    image_size: see `fetch_arrays`.

  Returns:
    `Arrays` as `fetch_arrays` returns them.

  Raises:
    TfdsUnavailable: tfds is missing, the data are not there and cannot be
      downloaded, or anything else went wrong; the message is one short line.
  """
  try:
    return fetch_arrays(name, tfds_data_dir(), image_size)
  except TfdsUnavailable:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise TfdsUnavailable(f"{type(e).__name__}: {local.one_line(e, 160)}") from None
