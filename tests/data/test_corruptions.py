"""Tests of jal.data.corruptions.gaussian_blur, the blur corruption of Hendrycks & Dietterich
(2019) at its ImageNet-C and CIFAR-10-C severities: the blur of an impulse against the Gaussian
weights, the 'nearest' border, truncation to uint8, and bad severities, images and benchmarks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jal.data import corruptions


def _ref_blurred_impulse(size, sigma):
  """255 * w_a * w_b (float): the blur of a one-pixel 255 impulse in a zero image."""
  radius = int(4.0 * sigma + 0.5)
  w = {}
  for j in range(-radius, radius + 1):
    w[j] = math.exp(-j * j / (2.0 * sigma * sigma))
  total = sum(w.values())
  centre = size // 2
  out = np.zeros((size, size))
  for a in range(-radius, radius + 1):
    for b in range(-radius, radius + 1):
      out[centre + a, centre + b] = 255.0 * w[a] / total * w[b] / total
  return out


# 'suite', not 'benchmark': pytest-benchmark, where installed, owns that fixture name.
@pytest.mark.parametrize('suite,severity,sigma', [
    ('imagenet-c', 1, 1.0), ('imagenet-c', 5, 6.0), ('cifar-10-c', 1, 0.4),
    ('cifar-10-c', 5, 1.0)])
def test_gaussian_blur_of_an_impulse(suite, severity, sigma):
  size = 2 * int(4.0 * sigma + 0.5) + 5
  images = np.zeros((2, size, size, 2), np.uint8)
  images[0, size // 2, size // 2, 0] = 255
  out = corruptions.gaussian_blur(images, severity, benchmark=suite)
  expected = _ref_blurred_impulse(size, sigma)
  got = out[0, :, :, 0].astype(int)
  # Truncated to uint8, not rounded: floor(expected), except within float noise of an integer.
  frac = expected - np.floor(expected)
  clear = (frac > 1e-6) & (frac < 1 - 1e-6)
  assert clear.sum() > 4
  np.testing.assert_array_equal(got[clear], np.floor(expected[clear]))
  assert np.abs(got - expected).max() < 1.0 + 1e-6
  # Nothing leaks across channels or images.
  assert not out[0, :, :, 1].any() and not out[1].any()


def test_gaussian_blur_border_is_nearest():
  # A bright first column in a dark image. 'nearest' extends column 0 to the left,
  # so column 0 becomes 255 * sum_{j=-r..0} w_j (skimage.filters.gaussian's default).
  sigma, radius = 2.0, 8
  w = [math.exp(-j * j / (2 * sigma * sigma)) for j in range(-radius, radius + 1)]
  left = sum(w[:radius + 1]) / sum(w)
  images = np.zeros((1, 6, 20, 1), np.uint8)
  images[:, :, 0] = 255
  out = corruptions.gaussian_blur(images, 2)
  assert np.abs(out[0, :, 0, 0].astype(int) - math.floor(255 * left)).max() <= 1


def test_gaussian_blur_shape_dtype_constant_and_variance():
  rng = np.random.default_rng(2)
  images = rng.integers(0, 256, size=(3, 16, 16, 3)).astype(np.uint8)
  for severity in range(1, 6):
    out = corruptions.gaussian_blur(images, severity)
    assert out.shape == images.shape and out.dtype == np.uint8
    assert out.astype(float).var() < 0.5 * images.astype(float).var()
  constant = np.full((1, 8, 8, 3), 137, np.uint8)
  out = corruptions.gaussian_blur(constant, 3)
  # Truncation (floor) as in Hendrycks & Dietterich: 137 or, after rounding, 136.
  assert set(np.unique(out)) <= {136, 137}
  assert (corruptions.gaussian_blur(np.full((1, 4, 4, 1), 255, np.uint8), 2) >= 254).all()


@pytest.mark.parametrize('severity', [0, 6, 2.0, True])
def test_gaussian_blur_rejects_bad_severity(severity):
  with pytest.raises(ValueError, match='severity'):
    corruptions.gaussian_blur(np.zeros((1, 4, 4, 3), np.uint8), severity)


def test_gaussian_blur_rejects_bad_images_and_benchmark():
  with pytest.raises(ValueError, match='uint8'):
    corruptions.gaussian_blur(np.zeros((4, 4, 3), np.uint8), 1)
  with pytest.raises(ValueError, match='uint8'):
    corruptions.gaussian_blur(np.zeros((1, 4, 4, 3), np.float32), 1)
  with pytest.raises(ValueError, match='benchmark'):
    corruptions.gaussian_blur(np.zeros((1, 4, 4, 3), np.uint8), 1, benchmark='cifar')
