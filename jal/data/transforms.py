"""Dataset transforms for the evaluation suite: held-out classes, image-shape matching.

Host-side, on whole splits; the on-device augmentation of train batches is
`jal.data.augment`, the image corruptions `jal.data.corruptions`.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jal.data import local
from jal.data.dataset import Dataset, channel_stats
from jal.errors import JalError


def hold_out_classes(ds: Dataset, classes: Sequence[int]) -> tuple[Dataset, np.ndarray]:
  """Removes ``classes`` from both splits; their test images become an OOD set.

  The OOD detection protocol "in-distribution: the other classes" (SCAL,
  Krishnan et al. 2021, evaluates OOD AUROC against a second dataset; a
  held-out set of classes needs no second dataset). The remaining classes are relabelled
  ``0..K'-1`` in their original order, keeping their names; mean and std are
  recomputed from the remaining train images.

  Args:
    ds: the dataset.
    classes: distinct class indices of ``ds`` to hold out, fewer than all.

  Returns:
    ``(dataset without the classes, uint8 [m, H, W, C] test images of the classes)``.

  Raises:
    JalError: a class out of range or repeated, or every class held out.
  """
  classes = [int(c) for c in classes]
  if len(set(classes)) != len(classes) or any(not 0 <= c < ds.num_classes for c in classes):
    raise JalError(f'config.evaluation.ood_classes={tuple(classes)} must be distinct classes of '
                   f'{ds.name} (0..{ds.num_classes - 1})')
  kept = [c for c in range(ds.num_classes) if c not in classes]
  if not kept:
    raise JalError('config.evaluation.ood_classes holds out every class; keep at least two')
  relabel = np.full(ds.num_classes, -1, np.int32)
  relabel[kept] = np.arange(len(kept), dtype=np.int32)
  train = relabel[ds.train_labels] >= 0
  test = relabel[ds.test_labels] >= 0
  train_images = ds.train_images[train]
  mean, std = channel_stats(train_images)
  kept_ds = dataclasses.replace(
      ds, train_images=train_images, train_labels=relabel[ds.train_labels[train]],
      test_images=ds.test_images[test], test_labels=relabel[ds.test_labels[test]],
      class_names=tuple(ds.class_names[c] for c in kept), mean=mean, std=std)
  return kept_ds, ds.test_images[~test]


def match_image_shape(images: np.ndarray, shape: Sequence[int]) -> np.ndarray:
  """``images`` resized (bilinear) and converted to ``shape = (H, W, C)``.

  Grey to colour repeats the channel; colour to grey takes the ITU-R 601
  luma (PIL's ``convert('L')``: ``0.299 R + 0.587 G + 0.114 B``). So an OOD
  set from another dataset (MNIST against CIFAR-10) can go through the task
  model.

  Args:
    images: uint8 ``[n, h, w, c]``, ``c`` in {1, 3}.
    shape: the target ``(H, W, C)``, ``H == W``, ``C`` in {1, 3}.

  Returns:
    uint8 ``[n, H, W, C]``.

  Raises:
    JalError: a non-square target or a channel count other than 1 or 3.
  """
  height, width, channels = (int(s) for s in shape)
  if height != width or channels not in (1, 3) or images.shape[-1] not in (1, 3):
    raise JalError(f'cannot convert images {images.shape[1:]} to {tuple(shape)}: square images '
                   'with 1 or 3 channels only')
  images = local.resize_images(np.asarray(images, np.uint8), height)
  if images.shape[-1] == channels:
    return images
  if channels == 3:
    return np.repeat(images, 3, axis=-1)
  luma = images.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  return np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None]
