"""Tests of jal.data.transforms: hold_out_classes relabels the kept classes and returns the
held-out classes' test images (an out-of-distribution set), and match_image_shape converts grey
images to colour and back."""

from __future__ import annotations

import chex
import numpy as np
import pytest

from conftest import load_dataset, tiny_config
from jal.data import transforms
from jal.errors import JalError


def test_hold_out_classes_relabels_and_returns_the_held_out_test_images():
  config = tiny_config('random')
  dataset = load_dataset(config)
  kept, ood = transforms.hold_out_classes(dataset, (1, 8))
  assert kept.num_classes == 8 and kept.class_names == tuple(
      n for i, n in enumerate(dataset.class_names) if i not in (1, 8))
  assert ood.shape[0] == np.isin(dataset.test_labels, (1, 8)).sum()
  assert kept.train_labels.max() == 7 and kept.num_train == (~np.isin(
      dataset.train_labels, (1, 8))).sum()
  np.testing.assert_array_equal(kept.test_images[kept.test_labels == 1],
                                dataset.test_images[dataset.test_labels == 2])
  with pytest.raises(JalError, match='must be distinct classes'):
    transforms.hold_out_classes(dataset, (3, 3))


def test_match_image_shape_converts_grey_and_colour():
  grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
  colour = transforms.match_image_shape(grey, (8, 8, 3))
  chex.assert_shape(colour, (2, 8, 8, 3))
  np.testing.assert_array_equal(colour[..., 0], colour[..., 2])
  back = transforms.match_image_shape(colour, (8, 8, 1))
  np.testing.assert_array_equal(back, colour[..., :1])  # equal channels: luma is the channel
