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
