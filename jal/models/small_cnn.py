"""A small CNN for quick runs on a CPU."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Features
from jal.models.layers import conv_bn_relu, max_pool_2x2


class SmallCNN(nn.Module):
  """A VGG-style CNN of three stages, small enough to train on a CPU.

  Each stage is [3x3 conv (with bias, padding 1), BN, ReLU] x2, followed by a
  2x2 max-pool except after the last stage; stage widths ``w, 2w, 4w``; then
  global average pooling. Works on inputs as small as 8x8 (8 -> 4 -> 2).
  Batch norm: Ioffe & Szegedy 2015. Initialisation: flax defaults (every conv
  is followed by BN).

  Attributes:
    width: channels of the first stage.
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32 and
      ``pooled`` is returned in float32.
    dropout_rate: MC dropout after every conv's activation, active only with
      a ``'dropout'`` PRNG stream (`jal.models.layers.mc_dropout`); 0 (default): none.
  """

  width: int = 32
  dtype: Any = jnp.float32
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    """Computes the features of a batch of images.

    Args:
      x: float array with shape ``[B, H, W, C]``, already normalised.
      train: use batch statistics and update the running averages in BN
        (apply with ``mutable=['batch_stats']``) when True.

    Returns:
      `Features` with ``pooled`` float32 ``[B, 4 * width]`` and ``blocks`` the
      three stage outputs (after the stage's max-pool, if any): 32x32 input
      gives 16x16, 8x8 and 8x8 maps; 8x8 input gives 4x4, 2x2 and 2x2; in
      ``dtype``.
    """
    blocks = []
    for stage, multiplier in enumerate((1, 2, 4)):
      for index in range(2):
        x = conv_bn_relu(self, x, self.width * multiplier, train=train, dtype=self.dtype,
                         dropout_rate=self.dropout_rate,
                         conv_name=f'stage{stage + 1}_conv{index + 1}',
                         bn_name=f'stage{stage + 1}_bn{index + 1}')
      if stage < 2:
        x = max_pool_2x2(x)
      blocks.append(x)
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return Features(pooled=pooled, blocks=tuple(blocks))
