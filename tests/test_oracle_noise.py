"""Tests for jal.oracle.noisy_labels: symmetric label noise (PAL, Sec. 4.2).

Its docstring promises that *exactly* ``round(noise_rate * n)`` labels change,
each to a class drawn uniformly from the ``K - 1`` wrong ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from jal.errors import JalError
from jal.oracle import noisy_labels


def true_labels(n: int, k: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, k, size=n).astype(np.int32)


@pytest.mark.parametrize('rate', [0.0, 0.2, 1.0])
@pytest.mark.parametrize('n, k', [(1000, 10), (7, 10), (501, 2), (0, 3)])
def test_flips_exactly_the_stated_number_never_to_the_true_class(rate, n, k):
  labels = true_labels(n, k)
  before = labels.copy()
  noisy = noisy_labels(labels, rate, k, np.random.default_rng(1))
  np.testing.assert_array_equal(labels, before)  # the input is not modified
  assert noisy.dtype == np.int32 and noisy.shape == (n,)
  assert noisy.min(initial=0) >= 0 and noisy.max(initial=0) < k
  changed = noisy != labels
  # Exactly round(rate * n) changed: with the flipped set of that size, this
  # also means no flipped label landed on its true class.
  assert changed.sum() == round(rate * n)


def test_rate_one_changes_every_label():
  labels = true_labels(300, 4)
  noisy = noisy_labels(labels, 1.0, 4, np.random.default_rng(0))
  assert np.all(noisy != labels)
  # With two classes, the only wrong class is the other one.
  labels2 = true_labels(50, 2)
  np.testing.assert_array_equal(noisy_labels(labels2, 1.0, 2, np.random.default_rng(0)),
                                1 - labels2)


def test_wrong_class_is_uniform_over_the_other_classes():
  k = 5
  labels = np.zeros(20000, np.int32)
  noisy = noisy_labels(labels, 1.0, k, np.random.default_rng(0))
  freq = np.bincount(noisy, minlength=k) / labels.size
  assert freq[0] == 0
  np.testing.assert_allclose(freq[1:], 1 / (k - 1), atol=0.02)


def test_which_labels_flip_is_uniform():
  labels = np.zeros(10, np.int32)
  hits = np.zeros(10)
  rng = np.random.default_rng(0)
  for _ in range(2000):
    hits += noisy_labels(labels, 0.2, 3, rng) != labels
  np.testing.assert_allclose(hits / 2000, 0.2, atol=0.04)


def test_deterministic_given_the_generator():
  labels = true_labels(1000, 10)
  a = noisy_labels(labels, 0.2, 10, np.random.default_rng(3))
  b = noisy_labels(labels, 0.2, 10, np.random.default_rng(3))
  c = noisy_labels(labels, 0.2, 10, np.random.default_rng(4))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize('rate', [-0.1, 1.5, float('nan')])
def test_rate_out_of_range(rate):
  with pytest.raises(JalError, match='config.oracle.noise_rate'):
    noisy_labels(true_labels(10, 3), rate, 3, np.random.default_rng(0))
