"""Semantic segmentation's measures: the confusion matrix on the device, mIoU from it,
and per-pixel acquisition scores reduced to one score per image.

The papers that report segmentation (PAL: Bhatnagar et al. 2021, Sec. 4;
MAL: Ebrahimi et al. 2020, Sec. 4.2; TA-VAAL: Kim et al. 2021, Sec. 4.4)
measure mean intersection over union over the classes, with void pixels
ignored. The confusion matrix is accumulated batch by batch inside compiled
code (a ``[K, K]`` int32 array), so the masks never leave the device; IoU and
pixel accuracy are read from it on the host at the end.

A pixel's acquisition score becomes an image's by a reduction over its
non-void pixels: the mean by default, as both papers do (PAL, Sec. 3.2: "we
calculate SC pixel-wise and average it to get SC for the sample"; MAL, Sec.
3: "entropy is taken to be the pixel-average in the output").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

IGNORE = 255  # the mask value of void pixels, left out of losses and of mIoU
REDUCTIONS = ('mean', 'max', 'sum')


def confusion_matrix(predicted: jax.Array, truth: jax.Array, num_classes: int,
                     ignore: int = IGNORE) -> jax.Array:
  """The ``[K, K]`` confusion matrix of a batch: rows are the true class, columns the predicted.

  Args:
    predicted: int with shape ``[B, H, W]``: the predicted class of each pixel.
    truth: uint8 or int with shape ``[B, H, W]``: the true class, ``ignore``
      for void.
    num_classes: ``K``.
    ignore: the void value; its pixels are not counted.

  Returns:
    int32 ``[K, K]``; ``sum`` is the number of non-void pixels. Jit-compatible
    (one scatter-add), to be summed over batches.
  """
  truth = truth.astype(jnp.int32)
  valid = (truth != ignore) & (truth >= 0) & (truth < num_classes)
  index = jnp.where(valid, truth * num_classes + predicted.astype(jnp.int32), 0)
  counts = jnp.zeros(num_classes * num_classes, jnp.int32).at[index.ravel()].add(
      valid.ravel().astype(jnp.int32))
  return counts.reshape(num_classes, num_classes)


def iou_metrics(confusion: np.ndarray) -> dict:
  """mIoU, per-class IoU and pixel accuracy of a confusion matrix.

  IoU_k = TP_k / (TP_k + FP_k + FN_k). A class absent from both the truth and
  the predictions has no IoU (None) and is left out of the mean, as the
  Cityscapes evaluation does.

  Args:
    confusion: int ``[K, K]`` from `confusion_matrix` (summed over batches).

  Returns:
    ``{'miou': float, 'per_class_iou': list[float | None], 'pixel_accuracy':
    float}``; ``miou`` and ``pixel_accuracy`` are None when no pixel counted.
  """
  c = np.asarray(confusion, np.float64)
  tp = np.diag(c)
  union = c.sum(0) + c.sum(1) - tp
  per_class = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
  present = [v for v in per_class if v is not None]
  total = c.sum()
  return {'miou': float(np.mean(present)) if present else None,
          'per_class_iou': per_class,
          'pixel_accuracy': float(tp.sum() / total) if total > 0 else None}


def reduce_per_image(scores: jax.Array, truth_or_valid: jax.Array, reduction: str = 'mean',
                     ignore: int = IGNORE) -> jax.Array:
  """One acquisition score per image from per-pixel scores, over its non-void pixels.

  At query time the masks are unknown, so ``truth_or_valid`` is usually a
  boolean ``[B, H, W]`` of the pixels to count (all True); a mask with
  ``ignore`` marks void where one is known.

  Args:
    scores: float ``[B, H, W]``: a score per pixel (higher: more informative).
    truth_or_valid: bool ``[B, H, W]`` (True: counted), or a mask of class
      indices with ``ignore`` for void.
    reduction: ``'mean'`` (the papers'), ``'max'`` or ``'sum'``.
    ignore: the void value of a mask.

  Returns:
    float32 ``[B]``; an image without a counted pixel gets ``-inf`` (never
    chosen first).

  Raises:
    ValueError: an unknown reduction.
  """
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction {reduction!r} is not one of {', '.join(REDUCTIONS)}")
  valid = (truth_or_valid if truth_or_valid.dtype == jnp.bool_ else truth_or_valid != ignore)
  scores = scores.astype(jnp.float32)
  count = valid.sum((1, 2))
  if reduction == 'max':
    out = jnp.where(valid, scores, -jnp.inf).max((1, 2))
  else:
    total = jnp.where(valid, scores, 0.0).sum((1, 2))
    out = total / jnp.maximum(count, 1) if reduction == 'mean' else total
  return jnp.where(count > 0, out, -jnp.inf)
