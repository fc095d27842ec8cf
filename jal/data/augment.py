"""Image preprocessing that runs inside the compiled steps.

Images stay uint8 on the device; these functions turn a gathered uint8 batch
into normalised float32 inputs, with the random augmentation used for training
(pad-and-crop, horizontal flip) and the rotations of PAL's pretext task.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def normalize(images: jax.Array, mean: jax.Array, std: jax.Array) -> jax.Array:
  """Maps uint8 images to standardised float32.

  Args:
    images: uint8 with shape ``[B, H, W, C]``.
    mean: float32 with shape ``[C]``, per-channel mean in [0, 1] units.
    std: float32 with shape ``[C]``, per-channel standard deviation.

  Returns:
    float32 with shape ``[B, H, W, C]``: ``(images / 255 - mean) / std``.
  """
  x = images.astype(jnp.float32) / 255.0
  return (x - mean) / std


def random_crop(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
  """Zero-pads each image by ``pad`` pixels and crops back at a random offset.

  The standard CIFAR augmentation (He et al. 2016, Sec. 4.2); one offset per
  image, drawn uniformly from ``[0, 2 * pad]`` on each axis.

  Args:
    key: PRNG key.
    images: any dtype, shape ``[B, H, W, C]``.
    pad: padding in pixels; 0 returns the images unchanged.

  Returns:
    Same dtype and shape as ``images``.
  """
  if pad == 0:
    return images
  b, h, w, c = images.shape
  padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  offsets = jax.random.randint(key, (b, 2), 0, 2 * pad + 1)

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)


def random_flip(key: jax.Array, images: jax.Array) -> jax.Array:
  """Flips each image left-right with probability 1/2.

  Args:
    key: PRNG key.
    images: shape ``[B, H, W, C]``.

  Returns:
    Same dtype and shape as ``images``.
  """
  flip = jax.random.bernoulli(key, 0.5, (images.shape[0], 1, 1, 1))
  return jnp.where(flip, images[:, :, ::-1, :], images)


def augment(key: jax.Array, images: jax.Array, *, crop_pad: int, flip: bool) -> jax.Array:
  """Training augmentation: random crop with padding, then optional flip.

  Args:
    key: PRNG key.
    images: uint8 with shape ``[B, H, W, C]``.
    crop_pad: padding of the random crop in pixels (0 disables it).
    flip: whether to flip horizontally at random (only where a flip preserves
      the label).

  Returns:
    uint8 with shape ``[B, H, W, C]``.
  """
  crop_key, flip_key = jax.random.split(key)
  images = random_crop(crop_key, images, crop_pad)
  if flip:
    images = random_flip(flip_key, images)
  return images


def rotations(images: jax.Array) -> jax.Array:
  """The four rotated copies of PAL's pretext task (Bhatnagar et al., Eq. 1).

  Args:
    images: shape ``[B, H, W, C]`` with ``H == W``.

  Returns:
    Shape ``[4, B, H, W, C]``; entry ``i`` is every image rotated by
    ``90 * i`` degrees counter-clockwise (``numpy.rot90`` convention).

  Raises:
    ValueError: if the images are not square.
  """
  if images.shape[1] != images.shape[2]:
    raise ValueError(f'rotation needs square images, got {images.shape[1]}x{images.shape[2]}')
  return jnp.stack([jnp.rot90(images, k, axes=(1, 2)) for k in range(4)])


def augment_with_masks(key: jax.Array, images: jax.Array, masks: jax.Array, *, crop_pad: int,
                       flip: bool, ignore: int = 255) -> tuple[jax.Array, jax.Array]:
  """Segmentation's training augmentation: the same crop and flip of each image and its mask.

  The crop pads the image with zeros and the mask with ``ignore`` (padding is
  void, left out of the loss); offsets and flips are drawn once per pair, so
  a pixel and its label stay aligned. Masks move by whole pixels only
  (nearest neighbour: no interpolation of class indices).

  Args:
    key: PRNG key.
    images: uint8 ``[B, H, W, C]``.
    masks: uint8 ``[B, H, W]``: class indices, ``ignore`` for void.
    crop_pad: padding of the random crop in pixels (0: no crop).
    flip: whether to flip left-right at random.
    ignore: the void value of the masks.

  Returns:
    ``(images, masks)`` with the input shapes and dtypes.
  """
  crop_key, flip_key = jax.random.split(key)
  b, h, w, c = images.shape
  if crop_pad:
    padded_images = jnp.pad(images, ((0, 0), (crop_pad, crop_pad), (crop_pad, crop_pad), (0, 0)))
    padded_masks = jnp.pad(masks, ((0, 0), (crop_pad, crop_pad), (crop_pad, crop_pad)),
                           constant_values=ignore)
    offsets = jax.random.randint(crop_key, (b, 2), 0, 2 * crop_pad + 1)

    def crop(image, mask, offset):
      return (jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c)),
              jax.lax.dynamic_slice(mask, (offset[0], offset[1]), (h, w)))

    images, masks = jax.vmap(crop)(padded_images, padded_masks, offsets)
  if flip:
    flips = jax.random.bernoulli(flip_key, 0.5, (b,))
    images = jnp.where(flips[:, None, None, None], images[:, :, ::-1, :], images)
    masks = jnp.where(flips[:, None, None], masks[:, :, ::-1], masks)
  return images, masks


def _resized_crop(image: jax.Array, box: jax.Array) -> jax.Array:
  """``image`` float ``[H, W, C]`` cropped to ``box = (y0, x0, h, w)`` (pixels, float) and
  resampled bilinearly back to ``[H, W, C]`` (pixel centres, edges clamped)."""
  height, width = image.shape[:2]
  y0, x0, h, w = box[0], box[1], box[2], box[3]
  ys = jnp.clip(y0 + (jnp.arange(height) + 0.5) * h / height - 0.5, 0.0, height - 1.0)
  xs = jnp.clip(x0 + (jnp.arange(width) + 0.5) * w / width - 0.5, 0.0, width - 1.0)
  y_lo, x_lo = jnp.floor(ys).astype(jnp.int32), jnp.floor(xs).astype(jnp.int32)
  y_hi, x_hi = jnp.minimum(y_lo + 1, height - 1), jnp.minimum(x_lo + 1, width - 1)
  wy, wx = (ys - y_lo)[:, None, None], (xs - x_lo)[None, :, None]
  rows = image[y_lo] * (1 - wy) + image[y_hi] * wy  # [H, W, C]
  return rows[:, x_lo] * (1 - wx) + rows[:, x_hi] * wx


def _grey(images: jax.Array) -> jax.Array:
  """Luma ``[..., 1]`` of RGB ``[..., 3]`` (ITU-R 601, as torchvision's ``rgb_to_grayscale``)."""
  return jnp.sum(images * jnp.array([0.299, 0.587, 0.114], images.dtype), axis=-1, keepdims=True)


def _rotate_hue(images: jax.Array, angle: jax.Array) -> jax.Array:
  """RGB ``[B, H, W, 3]`` with the hue rotated by ``angle`` ``[B]`` radians, as a rotation of
  the chroma plane of YIQ (a linear stand-in for torchvision's HSV hue shift)."""
  to_yiq = jnp.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                      [0.211, -0.523, 0.312]], jnp.float32)
  yiq = jnp.einsum('bhwc,dc->bhwd', images, to_yiq)
  cos, sin = jnp.cos(angle)[:, None, None], jnp.sin(angle)[:, None, None]
  i, q = yiq[..., 1], yiq[..., 2]
  yiq = jnp.stack([yiq[..., 0], cos * i - sin * q, sin * i + cos * q], axis=-1)
  return jnp.einsum('bhwd,cd->bhwc', yiq, jnp.linalg.inv(to_yiq))


def simclr_augment(key: jax.Array, images: jax.Array, *, flip: bool,
                   crop_scale: tuple[float, float] = (0.2, 1.0), jitter_prob: float = 0.8,
                   brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                   hue: float = 0.1, grey_prob: float = 0.2) -> jax.Array:
  """One SimCLR view of each image (Chen, Kornblith, Norouzi & Hinton 2020, App. A).

  In order: a random resized crop (area fraction uniform in ``crop_scale``,
  aspect ratio log-uniform in [3/4, 4/3], resampled bilinearly to the input
  size), a horizontal flip with probability 1/2 (``flip``), with probability
  ``jitter_prob`` a colour jitter (brightness, contrast, saturation factors
  uniform in ``[1 - s, 1 + s]``, a hue rotation uniform in ``[-hue, hue]``
  turns, in that fixed order), and greyscale with probability ``grey_prob``.
  The defaults are SCAN's CIFAR-10 SimCLR settings (Van Gansbeke et al. 2020),
  whose features TypiClust and ProbCover use; Gaussian blur is left out, as
  Chen et al. do for CIFAR-10. Saturation, hue and greyscale change nothing
  in single-channel images.

  Args:
    key: PRNG key.
    images: uint8 ``[B, H, W, C]``.
    flip: whether to flip left-right at random.
    crop_scale, jitter_prob, brightness, contrast, saturation, hue, grey_prob:
      as above.

  Returns:
    float32 ``[B, H, W, C]`` in ``[0, 1]`` (not yet `normalize`d: pass it
    through ``(x - mean) / std``).
  """
  b, height, width, channels = images.shape
  keys = jax.random.split(key, 9)
  x = images.astype(jnp.float32) / 255.0
  area = jax.random.uniform(keys[0], (b,), minval=crop_scale[0], maxval=crop_scale[1])
  log_ratio = jax.random.uniform(keys[1], (b,), minval=jnp.log(3 / 4), maxval=jnp.log(4 / 3))
  ratio = jnp.exp(log_ratio)
  w = jnp.clip(jnp.sqrt(area * ratio) * width, 1.0, width)
  h = jnp.clip(jnp.sqrt(area / ratio) * height, 1.0, height)
  corner = jax.random.uniform(keys[2], (b, 2)) * jnp.stack([height - h, width - w], axis=1)
  x = jax.vmap(_resized_crop)(x, jnp.stack([corner[:, 0], corner[:, 1], h, w], axis=1))
  if flip:
    x = random_flip(keys[3], x)

  def factor(k, strength):
    return jax.random.uniform(k, (b, 1, 1, 1), minval=1 - strength, maxval=1 + strength)

  jittered = jnp.clip(x * factor(keys[4], brightness), 0.0, 1.0)
  mean = jnp.mean(_grey(jittered) if channels == 3 else jittered, axis=(1, 2, 3), keepdims=True)
  jittered = jnp.clip(mean + (jittered - mean) * factor(keys[5], contrast), 0.0, 1.0)
  if channels == 3:
    grey = _grey(jittered)
    jittered = jnp.clip(grey + (jittered - grey) * factor(keys[6], saturation), 0.0, 1.0)
    angle = jax.random.uniform(keys[7], (b,), minval=-hue, maxval=hue) * 2 * jnp.pi
    jittered = jnp.clip(_rotate_hue(jittered, angle), 0.0, 1.0)
  draws = jax.random.uniform(keys[8], (2, b, 1, 1, 1))
  x = jnp.where(draws[0] < jitter_prob, jittered, x)
  if channels == 3:
    x = jnp.where(draws[1] < grey_prob, jnp.broadcast_to(_grey(x), x.shape), x)
  return x
