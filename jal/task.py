"""The task: what a label is, what the task model predicts from it, how it is measured.

The loop and the strategies speak to the task through `Task` alone, so a
second kind of label is a second implementation, not a special case:
`ClassificationTask` (one class index per image) now; semantic segmentation
(a mask per image, with an ignore value, measured by mIoU) is the next.

A task gives:
- the label array of the pool (`label_array`): what the train steps read,
  with the unknown labels of the unlabeled pool marked;
- the task model's prediction head (`head`) and its supervised objective
  (`loss`), which strategies build on;
- the test metrics of a round (`evaluate`) and the per-class counts of a set
  of labels (`class_counts`), which the records hold.
"""

from __future__ import annotations

import abc
from typing import Callable

import flax.linen as nn
import jax
import numpy as np

from jal import metrics as metrics_lib
from jal.models import ClassifierHead
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
  """

  def __init__(self, class_names: tuple[str, ...]):
    self.class_names = tuple(class_names)

  @property
  def num_classes(self) -> int:
    return len(self.class_names)

  @abc.abstractmethod
  def label_array(self, pool: Pool) -> np.ndarray:
    """The labels the train steps read: the oracle's answers, unknown elsewhere."""

  @abc.abstractmethod
  def head(self) -> nn.Module:
    """The task model's prediction head, output ``'classifier'``."""

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


class ClassificationTask(Task):
  """Image classification: one class index per image.

  Labels are int32, ``-1`` where the oracle has not answered; the head is a
  linear classifier on the pooled features, the objective the softmax
  cross-entropy, the metrics those of the SCAL paper's evaluation suite
  (Krishnan et al. 2021; `jal.metrics`).
  """

  def label_array(self, pool: Pool) -> np.ndarray:
    """int32 ``[N]``: the oracle's labels, -1 where unlabeled."""
    return pool.label_array()

  def head(self) -> nn.Module:
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


def make_task(class_names: tuple[str, ...]) -> Task:
  """The task of a dataset; classification is the only one today."""
  return ClassificationTask(class_names)
