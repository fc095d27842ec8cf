"""The in-memory dataset every part of jal works on."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Arrays:
  """Decoded splits, as a reader returns them, before they become a `Dataset`.

  Attributes:
    train_images: uint8 ``[N, H, W, C]``.
    train_labels: int32 ``[N]``.
    test_images: uint8 ``[M, H, W, C]``.
    test_labels: int32 ``[M]``.
    class_names: one name per class, in label order.
  """

  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Dataset:
  """A labelled image classification dataset held as uint8 arrays.

  Attributes:
    name: the dataset's name, e.g. ``"cifar10"``.
    train_images: uint8 array with shape ``[N, H, W, C]``; the pool the active
      learner draws from.
    train_labels: int32 array with shape ``[N]``, values in ``[0, num_classes)``;
      the ground truth the oracle answers with.
    test_images: uint8 array with shape ``[M, H, W, C]``.
    test_labels: int32 array with shape ``[M]``.
    class_names: one name per class, in label order.
    flip: whether a horizontal flip preserves the label (False for digits).
    mean: float32 array with shape ``[C]``, per-channel mean of the train
      images in [0, 1] units (used to normalise inside the compiled steps).
    std: float32 array with shape ``[C]``, per-channel standard deviation, same
      units.
  """

  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  class_names: tuple[str, ...]
  flip: bool
  mean: np.ndarray
  std: np.ndarray

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(self.train_images.shape[1:])

  @property
  def num_train(self) -> int:
    return int(self.train_images.shape[0])

  @property
  def spec(self) -> 'ImageSpec':
    return ImageSpec(self.image_shape, self.mean, self.std, self.flip)

  def pool_data(self) -> 'PoolData':
    """What the learner may see of this dataset: the pool's images, never a label."""
    return PoolData(self.name, self.train_images, self.class_names, self.spec)


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSpec:
  """How a network sees the images: their shape, normalisation and flips.

  Attributes:
    shape: ``(H, W, C)``.
    mean: float32 ``[C]``, per-channel mean of the train images, in [0, 1] units.
    std: float32 ``[C]``, per-channel standard deviation, same units.
    flip: whether a horizontal flip preserves the label (False for digits).
  """

  shape: tuple[int, int, int]
  mean: np.ndarray
  std: np.ndarray
  flip: bool


@dataclasses.dataclass(frozen=True)
class PoolData:
  """The train split as the learner (strategies, initial pools) sees it: no labels.

  The true labels are the oracle's (`jal.oracle`); a strategy gets this view
  and the labels the oracle has answered, so it cannot read the hidden ones.

  Attributes:
    name: the dataset's name.
    images: uint8 ``[N, H, W, C]``, the pool (host memory).
    class_names: one name per class, in label order (fixed at the start).
    spec: shape and normalisation of the images.
  """

  name: str
  images: np.ndarray
  class_names: tuple[str, ...]
  spec: ImageSpec

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @property
  def num_train(self) -> int:
    return int(self.images.shape[0])


def channel_stats(images: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel mean and standard deviation of uint8 images, in [0, 1] units.

  Args:
    images: uint8 array with shape ``[N, H, W, C]``.
    chunk: images per chunk, so memory stays O(chunk) rather than O(N).

  Returns:
    ``(mean, std)``, each float32 with shape ``[C]``.
  """
  c = images.shape[-1]
  total = np.zeros(c, np.float64)
  total_sq = np.zeros(c, np.float64)
  for start in range(0, images.shape[0], chunk):
    x = images[start:start + chunk].reshape(-1, c).astype(np.float64) / 255.0
    total += x.sum(0)
    total_sq += (x * x).sum(0)
  count = images.shape[0] * images.shape[1] * images.shape[2]
  mean = total / count
  std = np.sqrt(np.maximum(total_sq / count - mean * mean, 1e-12))
  return mean.astype(np.float32), std.astype(np.float32)
