"""Tests of jal.data.augment: the four rotations (counter-clockwise, like np.rot90), random crop (a
window of the zero-padded image, offsets uniform and per image), random left-right flip,
normalisation, and their composition."""

from __future__ import annotations

import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.data import augment

rotations = jax.jit(augment.rotations)
random_crop = jax.jit(augment.random_crop, static_argnames=('pad',))
random_flip = jax.jit(augment.random_flip)
normalize = jax.jit(augment.normalize)
augment_fn = jax.jit(augment.augment, static_argnames=('crop_pad', 'flip'))

_B, _H, _C = 6, 5, 2
_PAD = 2


def _images(seed: int = 0, shape=(_B, _H, _H, _C)) -> np.ndarray:
  # Values in 1..255: never 0, so the zero padding can not be mistaken for a pixel.
  return np.random.default_rng(seed).integers(1, 256, size=shape, dtype=np.uint8)


def _crop_offsets(out: np.ndarray, images: np.ndarray, pad: int) -> list[list[tuple[int, int]]]:
  """For each output image, every offset at which it is a window of the padded input."""
  _, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  found = []
  for b in range(images.shape[0]):
    found.append([(dy, dx) for dy, dx in itertools.product(range(2 * pad + 1), repeat=2)
                  if np.array_equal(padded[b, dy:dy + h, dx:dx + w], out[b])])
  return found


# --------------------------------------------------------------------------- rotations


def test_rotations_match_np_rot90():
  images = _images(1, (2, 3, 3, 2))
  got = rotations(jnp.asarray(images))
  chex.assert_shape(got, (4, 2, 3, 3, 2))
  assert got.dtype == jnp.uint8
  for k in range(4):
    np.testing.assert_array_equal(np.asarray(got[k]), np.rot90(images, k, axes=(1, 2)))
  # The four copies differ from each other (the image has no symmetry).
  for i, j in itertools.combinations(range(4), 2):
    assert not np.array_equal(np.asarray(got[i]), np.asarray(got[j]))


def test_rotation_by_90_is_counter_clockwise():
  image = np.array([[1, 2], [3, 4]], np.float32)[None, :, :, None]
  got = np.asarray(rotations(jnp.asarray(image)))[..., 0]
  np.testing.assert_array_equal(got[0, 0], [[1, 2], [3, 4]])
  np.testing.assert_array_equal(got[1, 0], [[2, 4], [1, 3]])  # 90 deg counter-clockwise
  np.testing.assert_array_equal(got[2, 0], [[4, 3], [2, 1]])
  np.testing.assert_array_equal(got[3, 0], [[3, 1], [4, 2]])


def test_rotations_reject_non_square():
  with pytest.raises(ValueError, match='square'):
    rotations(jnp.zeros((1, 4, 5, 1), jnp.uint8))
  with pytest.raises(ValueError, match='square'):
    augment.rotations(jnp.zeros((2, 3, 2, 3), jnp.uint8))


# --------------------------------------------------------------------------- random_crop


def test_random_crop_is_a_window_of_the_padded_input():
  images = _images(2)
  all_offsets = []
  for seed in range(8):
    out = np.asarray(random_crop(jax.random.key(seed), jnp.asarray(images), pad=_PAD))
    assert out.shape == images.shape and out.dtype == np.uint8
    found = _crop_offsets(out, images, _PAD)
    for b, offsets in enumerate(found):
      assert offsets, f'key {seed}, image {b}: not a window of the zero-padded image'
    all_offsets.extend(offsets[0] for offsets in found)
  # Every offset in [0, 2 * pad] occurs on both axes (uniform over the range,
  # including the extremes).
  dys = {dy for dy, _ in all_offsets}
  dxs = {dx for _, dx in all_offsets}
  assert dys == set(range(2 * _PAD + 1))
  assert dxs == set(range(2 * _PAD + 1))


def test_random_crop_offsets_differ_between_images():
  images = _images(3)
  out = np.asarray(random_crop(jax.random.key(0), jnp.asarray(images), pad=_PAD))
  offsets = [found[0] for found in _crop_offsets(out, images, _PAD)]
  assert len(set(offsets)) > 1, f'every image got the same offset {offsets[0]}'


def test_random_crop_depends_on_key():
  images = jnp.asarray(_images(4))
  a = np.asarray(random_crop(jax.random.key(0), images, pad=_PAD))
  b = np.asarray(random_crop(jax.random.key(0), images, pad=_PAD))
  c = np.asarray(random_crop(jax.random.key(1), images, pad=_PAD))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


def test_random_crop_pad_zero_is_identity():
  images = _images(5)
  out = random_crop(jax.random.key(0), jnp.asarray(images), pad=0)
  np.testing.assert_array_equal(np.asarray(out), images)


def test_random_crop_float_images():
  images = _images(6).astype(np.float32) / 7.0
  out = np.asarray(random_crop(jax.random.key(3), jnp.asarray(images), pad=1))
  assert out.dtype == np.float32
  assert all(_crop_offsets(out, images, 1))


# --------------------------------------------------------------------------- random_flip


def test_random_flip_each_image_or_its_mirror():
  images = _images(7, (16, _H, _H, _C))
  out = np.asarray(random_flip(jax.random.key(0), jnp.asarray(images)))
  assert out.shape == images.shape and out.dtype == np.uint8
  flipped = []
  for b in range(images.shape[0]):
    same = np.array_equal(out[b], images[b])
    mirror = np.array_equal(out[b], images[b, :, ::-1, :])
    assert same != mirror, f'image {b} is neither the input nor its left-right mirror'
    flipped.append(mirror)
  # Per image, not one decision for the whole batch.
  assert 0 < sum(flipped) < len(flipped)


def test_random_flip_is_left_right():
  image = np.arange(6, dtype=np.uint8).reshape(1, 2, 3, 1) + 1
  outs = {np.asarray(random_flip(jax.random.key(s), jnp.asarray(image))).tobytes()
          for s in range(16)}
  mirrored = image[:, :, ::-1, :]
  assert outs == {image.tobytes(), mirrored.tobytes()}
  np.testing.assert_array_equal(mirrored[0, :, :, 0], [[3, 2, 1], [6, 5, 4]])


# --------------------------------------------------------------------------- normalize


def test_normalize():
  images = _images(8, (3, 4, 4, 3))
  mean = np.array([0.49, 0.48, 0.45], np.float32)
  std = np.array([0.25, 0.24, 0.26], np.float32)
  got = normalize(jnp.asarray(images), jnp.asarray(mean), jnp.asarray(std))
  chex.assert_shape(got, images.shape)
  assert got.dtype == jnp.float32
  ref = (images.astype(np.float64) / 255.0 - mean.astype(np.float64)) / std.astype(np.float64)
  chex.assert_trees_all_close(got, ref.astype(np.float32), atol=1e-5)
  # The extremes: 0 -> -mean/std, 255 -> (1-mean)/std, per channel.
  extremes = np.zeros((1, 1, 2, 3), np.uint8)
  extremes[0, 0, 1] = 255
  got = np.asarray(normalize(jnp.asarray(extremes), jnp.asarray(mean), jnp.asarray(std)))
  np.testing.assert_allclose(got[0, 0, 0], -mean / std, rtol=1e-6)
  np.testing.assert_allclose(got[0, 0, 1], (1 - mean) / std, rtol=1e-6)


# --------------------------------------------------------------------------- augment


@pytest.mark.parametrize('crop_pad,flip', [(0, False), (0, True), (_PAD, False), (_PAD, True)])
def test_augment_keeps_dtype_and_shape(crop_pad, flip):
  images = _images(9)
  out = augment_fn(jax.random.key(0), jnp.asarray(images), crop_pad=crop_pad, flip=flip)
  chex.assert_shape(out, images.shape)
  assert out.dtype == jnp.uint8
  out = np.asarray(out)
  if crop_pad == 0 and not flip:
    np.testing.assert_array_equal(out, images)
  # Each output is a crop of the image, or the mirror of one when flipping.
  crops = _crop_offsets(out, images, crop_pad)
  mirrored_crops = _crop_offsets(out[:, :, ::-1, :], images, crop_pad)
  for b in range(images.shape[0]):
    assert crops[b] or (flip and mirrored_crops[b]), f'image {b}'


def test_segmentation_augmentation_keeps_each_pixel_with_its_label():
  """A known pattern: the mask is a function of the image's pixels (class = red channel % 7),
  so after the joint crop and flip it must still be, except where padding made it void."""
  from jal.data.augment import augment_with_masks
  rng = np.random.default_rng(0)
  images = rng.integers(0, 250, (16, 9, 11, 3)).astype(np.uint8)
  images[..., 0] = np.maximum(images[..., 0], 1)  # padding (0) is told apart from pixels
  masks = (images[..., 0] % 7).astype(np.uint8)
  out_images, out_masks = jax.jit(augment_with_masks, static_argnames=('crop_pad', 'flip'))(
      jax.random.key(3), jnp.asarray(images), jnp.asarray(masks), crop_pad=3, flip=True)
  out_images, out_masks = np.asarray(out_images), np.asarray(out_masks)
  assert out_images.shape == images.shape and out_masks.shape == masks.shape
  assert out_masks.dtype == np.uint8
  padding = out_images[..., 0] == 0
  np.testing.assert_array_equal(out_masks[padding], 255)
  np.testing.assert_array_equal(out_masks[~padding], out_images[..., 0][~padding] % 7)
  assert padding.any() and not padding.all()
  # Flips alone: each pair is flipped together or not at all, and both happen.
  flip_images, flip_masks = augment_with_masks(jax.random.key(4), jnp.asarray(images),
                                               jnp.asarray(masks), crop_pad=0, flip=True)
  flipped = [np.array_equal(o, i[:, ::-1]) for o, i in zip(np.asarray(flip_images), images)]
  assert 0 < sum(flipped) < len(flipped)
  for f, mask_out, mask_in in zip(flipped, np.asarray(flip_masks), masks):
    np.testing.assert_array_equal(mask_out, mask_in[:, ::-1] if f else mask_in)


def test_simclr_augment_gives_views_in_range_and_greyscale_and_depends_on_key():
  images = jax.random.randint(jax.random.key(0), (3, 8, 8, 3), 0, 256).astype(jnp.uint8)
  views = jax.jit(augment.simclr_augment, static_argnames=('flip',))
  view = views(jax.random.key(1), images, flip=True)
  chex.assert_shape(view, (3, 8, 8, 3))
  assert view.dtype == jnp.float32 and 0.0 <= float(view.min()) and float(view.max()) <= 1.0
  assert not np.allclose(view, views(jax.random.key(2), images, flip=True))
  grey = views(jax.random.key(1), images, flip=True, grey_prob=1.0)
  np.testing.assert_allclose(grey[..., 0], grey[..., 2], atol=1e-6)
