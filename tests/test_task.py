"""Tests of jal.task: the classification task's label array, head, loss, metrics and counts."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
import pytest

from jal import metrics
from jal.models import ClassifierHead
from jal.objectives.classification import cross_entropy_loss
from jal.pool import Pool
from jal.task import ClassificationTask, make_task


def _config(bins=15):
  return ml_collections.ConfigDict({'evaluation': {'ece_bins': bins}})


def test_the_classification_task_is_what_the_loop_trains_and_measures():
  task = make_task(('a', 'b', 'c'))
  assert isinstance(task, ClassificationTask) and task.num_classes == 3
  pool = Pool(num_train=5, labeled=np.array([3, 0]), oracle_labels=np.array([2, 1], np.int32))
  np.testing.assert_array_equal(task.label_array(pool), [1, -1, -1, 2, -1])
  head = task.head()
  assert isinstance(head, ClassifierHead) and head.num_classes == 3
  assert task.loss is cross_entropy_loss
  np.testing.assert_array_equal(task.class_counts(np.array([2, 2, 0])), [1, 0, 2])
  assert task.class_counts(np.zeros(0, np.int64)).tolist() == [0, 0, 0]


@pytest.mark.parametrize('with_sets', [False, True])
def test_evaluate_gives_the_metrics_of_the_predictive_distribution(with_sets):
  rng = np.random.default_rng(0)
  log_p = np.asarray(jax.nn.log_softmax(rng.normal(size=(40, 3)) * 2, axis=-1), np.float32)
  ood_log_p = np.asarray(jax.nn.log_softmax(rng.normal(size=(10, 3)) * 0.1, axis=-1),
                         np.float32)
  labels = rng.integers(0, 3, 40).astype(np.int32)
  test_images = np.zeros((40, 2, 2, 1), np.uint8)
  sets = {'ood': np.ones((10, 2, 2, 1), np.uint8), 'blurred': np.full((40, 2, 2, 1), 2,
                                                                     np.uint8)} if with_sets else {}

  def predict(images, indices):  # a stand-in model: its output depends on which set it sees
    value = int(images[0, 0, 0, 0])
    return {0: log_p, 1: ood_log_p, 2: log_p[::-1]}[value][indices]

  got = make_task(('a', 'b', 'c')).evaluate(predict, test_images, labels, sets, _config(10))
  want = metrics.evaluation_metrics(log_p, labels, 3, num_bins=10)
  assert got['test_accuracy'] == want['accuracy'] and got['test_ece'] == want['ece']
  assert got['test_brier'] == want['brier'] and got['test_nll'] == want['nll']
  assert got['test_per_class_accuracy'] == want['per_class_accuracy']
  assert ('test_ood_auroc' in got) == with_sets and ('blurred_accuracy' in got) == with_sets
  if with_sets:
    assert got['test_ood_auroc'] == metrics.ood_auroc(metrics.max_softmax_probability(log_p),
                                                      metrics.max_softmax_probability(ood_log_p))
    assert got['blurred_accuracy'] == metrics.accuracy(log_p[::-1], labels)
    assert got['blurred_ece'] == metrics.expected_calibration_error(log_p[::-1], labels,
                                                                    num_bins=10)
