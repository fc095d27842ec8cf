"""The task: what a label is, what the task model predicts from it, how it is measured.

The loop and the strategies speak to the task through `Task` alone, so a
second kind of label is a second implementation, not a special case:
`ClassificationTask` (one class index per image) and `SegmentationTask` (a
mask per image, void pixels ignored, measured by mIoU).

A task gives:
- the label array of the pool (`label_array`): what the train steps read,
  with the unknown labels of the unlabeled pool marked;
- the task model's prediction head (`head`) and its supervised objective
  (`loss`), which strategies build on;
- the test metrics of a round (`evaluate`), its headline (`metric`), and
  the per-class counts of a set of labels (`class_counts`: images, or
  pixels for masks), which the records hold;
- how a per-pixel acquisition score becomes an image's (`per_image`), and
  which images hold a class (`contains`: PAL's biased initial pool).
"""

from __future__ import annotations

import abc
from typing import Callable

import flax.linen as nn
import jax
import numpy as np

import jax.numpy as jnp

from jal import metrics as metrics_lib, segmentation_metrics as seg_metrics
from jal.errors import JalError
from jal.models import ClassifierHead, DeepLabHead, PixelClassifierHead
from jal.objectives import LossFn
from jal.objectives.classification import cross_entropy_loss
from jal.pool import Pool

# predict(images, indices) -> float32 [n, K] log p(y | x) of the task model
# (the strategy's predictive distribution) over images[indices].
Predict = Callable[[jax.Array, np.ndarray], np.ndarray]


class Task(abc.ABC):
  """A learning task on the images of a pool.

  Attributes:
    class_names: one name per class, in label order, fixed at the start.
    kind: ``'classification'`` or ``'segmentation'``.
    metric: the record key of the round's headline test metric (plots, tables).
    metric_name: how plots and logs name it.
  """

  kind = ''
  metric = 'test_accuracy'
  metric_name = 'test accuracy'

  def __init__(self, class_names: tuple[str, ...]):
    self.class_names = tuple(class_names)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @abc.abstractmethod
  def label_array(self, pool: Pool) -> np.ndarray:
    """The labels the train steps read: the oracle's answers, unknown elsewhere."""

  @abc.abstractmethod
  def head(self, backbone: str | None = None) -> nn.Module:
    """The task model's prediction head, output ``'classifier'``; ``backbone``:
    the name of the backbone it sits on when not the task model's (a strategy's
    own network, e.g. PAL's scoring network)."""

  @property
  @abc.abstractmethod
  def loss(self) -> LossFn:
    """The supervised objective of the task model."""

  @abc.abstractmethod
  def evaluate(self, predict: Predict, test_images: jax.Array, test_labels: np.ndarray,
               evaluation_sets: dict[str, jax.Array], config) -> dict:
    """The round's test metrics, for ``results.jsonl``."""

  @abc.abstractmethod
  def class_counts(self, labels: np.ndarray) -> np.ndarray:
    """int64 ``[K]``: how much of each class ``labels`` hold (-1, unknown, is not counted)."""

  @abc.abstractmethod
  def contains(self, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """bool ``[n]``: whether each of the ``n`` labels holds any of ``classes``."""

  def per_image(self, scores: jax.Array) -> jax.Array:
    """float32 ``[B]``: one acquisition score per image (traced; identity for one per image)."""
    return scores


class ClassificationTask(Task):
  kind = 'classification'

  """Image classification: one class index per image.

  Labels are int32, ``-1`` where the oracle has not answered; the head is a
  linear classifier on the pooled features, the objective the softmax
  cross-entropy, the metrics those of the SCAL paper's evaluation suite
  (Krishnan et al. 2021; `jal.metrics`).
  """

  def label_array(self, pool: Pool) -> np.ndarray:
    """int32 ``[N]``: the oracle's labels, -1 where unlabeled."""
    return pool.label_array()

  def head(self, backbone: str | None = None) -> nn.Module:
    del backbone
    return ClassifierHead(self.num_classes)

  @property
  def loss(self) -> LossFn:
    return cross_entropy_loss

  def evaluate(self, predict: Predict, test_images: jax.Array, test_labels: np.ndarray,
               evaluation_sets: dict[str, jax.Array], config) -> dict:
    """The test split's metrics of the predictive distribution ``predict``.

    Returns ``test_accuracy``, ``test_per_class_accuracy`` (a list of ``K``,
    None for a class absent from the split), ``test_ece`` (SCAL Eq. 6 with
    ``config.evaluation.ece_bins`` bins), ``test_brier`` and ``test_nll``
    (nats); see `jal.metrics`. With an ``'ood'`` set (uint8 device images),
    also ``test_ood_auroc``: the AUROC of the maximum softmax probability,
    test split against those images (SCAL's Fig. 4a, with MSP as the
    score). With a ``'blurred'`` set (the test split blurred, same order),
    also ``blurred_accuracy`` and ``blurred_ece`` (SCAL's Fig. 4b-c).
    """
    bins = config.evaluation.ece_bins
    log_p = predict(test_images, np.arange(test_labels.size))
    m = metrics_lib.evaluation_metrics(log_p, test_labels, self.num_classes, num_bins=bins)
    out = {'test_accuracy': m['accuracy'], 'test_per_class_accuracy': m['per_class_accuracy'],
           'test_ece': m['ece'], 'test_brier': m['brier'], 'test_nll': m['nll']}
    if 'ood' in evaluation_sets:
      ood = evaluation_sets['ood']
      ood_log_p = predict(ood, np.arange(ood.shape[0]))
      out['test_ood_auroc'] = metrics_lib.ood_auroc(
          metrics_lib.max_softmax_probability(log_p),
          metrics_lib.max_softmax_probability(ood_log_p))
    if 'blurred' in evaluation_sets:
      blurred_log_p = predict(evaluation_sets['blurred'], np.arange(test_labels.size))
      out['blurred_accuracy'] = metrics_lib.accuracy(blurred_log_p, test_labels)
      out['blurred_ece'] = metrics_lib.expected_calibration_error(blurred_log_p, test_labels,
                                                                  num_bins=bins)
    return out

  def class_counts(self, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels, np.int64)
    return np.bincount(labels[labels >= 0], minlength=self.num_classes)

  def contains(self, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    return np.isin(np.asarray(labels), classes)


# The head each segmentation backbone is used with (`jal.models`).
SEGMENTATION_HEADS = {'mobilenet_v2': DeepLabHead, 'small_fcn': PixelClassifierHead,
                      'drn_d_22': PixelClassifierHead}


class SegmentationTask(Task):
  """Semantic segmentation: a class per pixel, void pixels ignored.

  Labels are uint8 masks ``[N, H, W]``, `jal.segmentation_metrics.IGNORE`
  (255) for void and for the images the oracle has not answered; the head is
  per pixel (DeepLabv3's ASPP head on MobileNetV2, a 1x1 classifier on the
  FCN-style backbones); the objective the per-pixel cross-entropy over
  non-void pixels; the metrics mIoU, per-class IoU and pixel accuracy
  (`jal.segmentation_metrics`), as PAL, MAL and TA-VAAL report.

  Args:
    class_names: the classes, in label order.
    backbone: ``config.model.name``, which chooses the head (`SEGMENTATION_HEADS`).
    reduction: how a per-pixel acquisition score becomes an image's:
      ``'mean'`` (PAL Sec. 3.2 and MAL Sec. 3.2 average over pixels),
      ``'max'`` or ``'sum'`` (`jal.segmentation_metrics.reduce_per_image`).
      At query time the masks are unknown, so every pixel counts.

  Raises:
    JalError: a backbone without a segmentation head, or an unknown reduction.
  """

  kind = 'segmentation'
  metric = 'test_miou'
  metric_name = 'test mIoU'
  # Images per chunk of the test split's prediction (host memory: chunk x H x W x K floats).
  eval_chunk = 16

  def __init__(self, class_names: tuple[str, ...], backbone: str, reduction: str = 'mean'):
    super().__init__(class_names)
    if backbone not in SEGMENTATION_HEADS:
      raise JalError(f'config.model.name={backbone!r} is a classification backbone; '
                     f"segmentation uses one of {', '.join(sorted(SEGMENTATION_HEADS))}")
    if reduction not in seg_metrics.REDUCTIONS:
      raise JalError(f'config.segmentation.reduction={reduction!r} must be one of '
                     f"{', '.join(seg_metrics.REDUCTIONS)}")
    self.backbone = backbone
    self.reduction = reduction
    self._confusion = jax.jit(seg_metrics.confusion_matrix, static_argnums=2)

  def label_array(self, pool: Pool) -> np.ndarray:
    """uint8 ``[N, H, W]``: the oracle's masks, `IGNORE` where unlabeled."""
    masks = np.asarray(pool.oracle_labels)
    out = np.full((pool.num_train, *masks.shape[1:]), seg_metrics.IGNORE, np.uint8)
    out[pool.labeled] = masks
    return out

  def head(self, backbone: str | None = None) -> nn.Module:
    backbone = backbone or self.backbone
    if backbone not in SEGMENTATION_HEADS:
      raise JalError(f'backbone {backbone!r} is a classification backbone; segmentation uses '
                     f"one of {', '.join(sorted(SEGMENTATION_HEADS))}")
    return SEGMENTATION_HEADS[backbone](self.num_classes)

  @property
  def loss(self) -> LossFn:
    return cross_entropy_loss

  def evaluate(self, predict: Predict, test_images: jax.Array, test_labels: np.ndarray,
               evaluation_sets: dict[str, jax.Array], config) -> dict:
    """``test_miou``, ``test_per_class_iou`` (None for a class absent from the
    split and never predicted) and ``test_pixel_accuracy`` of the arg-max of
    ``predict``, void pixels left out; the confusion matrix is summed on the
    device, chunk by chunk of the test split."""
    del config
    if evaluation_sets:
      raise JalError(f'evaluation sets ({", ".join(evaluation_sets)}) are for classification; '
                     'unset config.evaluation.ood_* and blur_severity for segmentation')
    confusion = jnp.zeros((self.num_classes,) * 2, jnp.int32)
    for start in range(0, test_labels.shape[0], self.eval_chunk):
      idx = np.arange(start, min(start + self.eval_chunk, test_labels.shape[0]))
      predicted = np.argmax(predict(test_images, idx), axis=-1).astype(np.uint8)
      confusion = confusion + self._confusion(predicted, test_labels[idx], self.num_classes)
    m = seg_metrics.iou_metrics(np.asarray(confusion))
    return {'test_miou': m['miou'], 'test_per_class_iou': m['per_class_iou'],
            'test_pixel_accuracy': m['pixel_accuracy']}

  def class_counts(self, labels: np.ndarray) -> np.ndarray:
    """int64 ``[K]``: the pixels of each class in ``labels`` (uint8 ``[n, H, W]``), void not counted."""
    labels = np.asarray(labels).ravel()
    return np.bincount(labels[labels < self.num_classes], minlength=self.num_classes)[
        :self.num_classes].astype(np.int64)

  def contains(self, labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """bool ``[n]``: whether any pixel of each mask is of one of ``classes``."""
    labels = np.asarray(labels)
    return np.isin(labels, classes).reshape(labels.shape[0], -1).any(axis=1)

  def per_image(self, scores: jax.Array) -> jax.Array:
    """float32 ``[B]`` from per-pixel scores ``[B, H, W]``: ``reduction`` over every pixel."""
    if scores.ndim == 1:
      return scores
    return seg_metrics.reduce_per_image(scores, jnp.ones(scores.shape, bool), self.reduction)


def make_task(class_names: tuple[str, ...], labels: np.ndarray | None = None,
              config=None) -> Task:
  """The task of a dataset: segmentation when its labels are masks ``[N, H, W]``.

  Args:
    class_names: the classes.
    labels: the train labels (their rank decides); None: classification.
    config: the experiment config (``model.name``, ``segmentation.reduction``).
  """
  if labels is not None and np.ndim(labels) == 3:
    seg = config.get('segmentation') if config is not None else None
    return SegmentationTask(class_names, config.model.name,
                            seg.get('reduction', 'mean') if seg else 'mean')
  return ClassificationTask(class_names)
