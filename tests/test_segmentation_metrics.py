"""Segmentation's measures against NumPy: the confusion matrix and mIoU with void pixels and
classes absent from both prediction and truth, and per-pixel scores reduced per image."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import segmentation_metrics as sm


def _reference_miou(predicted, truth, k, ignore=255):
  """mIoU written from the definition: per class, |P ∩ T| / |P ∪ T| over non-void pixels."""
  valid = truth != ignore
  ious = []
  for c in range(k):
    p, t = (predicted == c) & valid, (truth == c) & valid
    union = (p | t).sum()
    if union:
      ious.append((p & t).sum() / union)
  return np.mean(ious), valid.sum(), ((predicted == truth) & valid).sum() / valid.sum()


def test_confusion_and_iou_match_numpy_with_void_and_absent_classes():
  rng = np.random.default_rng(0)
  k = 6
  truth = rng.integers(0, 4, (3, 7, 5)).astype(np.uint8)  # classes 4, 5 never true
  truth[rng.random(truth.shape) < 0.2] = sm.IGNORE
  predicted = rng.integers(0, 5, (3, 7, 5))  # class 5 never predicted: absent from both
  confusion = jax.jit(sm.confusion_matrix, static_argnums=2)(jnp.asarray(predicted),
                                                             jnp.asarray(truth), k)
  chex.assert_shape(confusion, (k, k))
  chex.assert_type(confusion, jnp.int32)
  expected = np.zeros((k, k), np.int64)
  valid = truth != sm.IGNORE
  np.add.at(expected, (truth[valid].astype(int), predicted[valid]), 1)
  np.testing.assert_array_equal(confusion, expected)
  got = sm.iou_metrics(np.asarray(confusion))
  miou, count, pixel_accuracy = _reference_miou(predicted, truth, k)
  assert got['miou'] == pytest.approx(miou) and np.asarray(confusion).sum() == count
  assert got['pixel_accuracy'] == pytest.approx(pixel_accuracy)
  assert got['per_class_iou'][5] is None and got['per_class_iou'][4] == 0.0


def test_confusion_matrices_of_batches_add_up():
  rng = np.random.default_rng(1)
  truth = rng.integers(0, 3, (4, 6, 6)).astype(np.uint8)
  predicted = rng.integers(0, 3, (4, 6, 6))
  whole = sm.confusion_matrix(jnp.asarray(predicted), jnp.asarray(truth), 3)
  parts = sum(sm.confusion_matrix(jnp.asarray(predicted[i:i + 2]), jnp.asarray(truth[i:i + 2]), 3)
              for i in (0, 2))
  np.testing.assert_array_equal(whole, parts)


def test_no_counted_pixel_gives_no_miou():
  empty = sm.iou_metrics(np.zeros((3, 3), np.int32))
  assert empty == {'miou': None, 'per_class_iou': [None] * 3, 'pixel_accuracy': None}


@pytest.mark.parametrize('reduction', sm.REDUCTIONS)
def test_per_image_reduction_over_non_void_pixels_matches_numpy(reduction):
  rng = np.random.default_rng(2)
  scores = rng.normal(size=(3, 4, 5)).astype(np.float32)
  mask = rng.integers(0, 3, (3, 4, 5)).astype(np.uint8)
  mask[1][rng.random((4, 5)) < 0.5] = sm.IGNORE
  mask[2] = sm.IGNORE  # all void
  got = jax.jit(sm.reduce_per_image, static_argnums=2)(jnp.asarray(scores), jnp.asarray(mask),
                                                       reduction)
  chex.assert_shape(got, (3,))
  for i in range(2):
    kept = scores[i][mask[i] != sm.IGNORE]
    expected = {'mean': kept.mean(), 'max': kept.max(), 'sum': kept.sum()}[reduction]
    assert float(got[i]) == pytest.approx(float(expected), rel=1e-5)
  assert float(got[2]) == -np.inf
  all_pixels = sm.reduce_per_image(jnp.asarray(scores), jnp.ones((3, 4, 5), bool), reduction)
  np.testing.assert_allclose(all_pixels[0], {'mean': scores[0].mean(), 'max': scores[0].max(),
                                             'sum': scores[0].sum()}[reduction], rtol=1e-5)
  with pytest.raises(ValueError, match='not one of mean, max, sum'):
    sm.reduce_per_image(jnp.asarray(scores), jnp.asarray(mask), 'median')
