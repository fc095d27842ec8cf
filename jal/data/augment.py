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
