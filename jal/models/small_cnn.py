"""A small CNN for quick runs on a CPU."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Backbone, Features
from jal.models.layers import conv_bn_relu, max_pool_2x2


class SmallCNN(Backbone):
  """A VGG-style CNN of three stages, small enough to train on a CPU.

  Each stage is [3x3 conv (with bias, padding 1), BN, ReLU] x2, followed by a
  2x2 max-pool except after the last stage; stage widths ``w, 2w, 4w``; then
  global average pooling. Works on inputs as small as 8x8 (8 -> 4 -> 2).
  Batch norm: Ioffe & Szegedy 2015. Initialisation: flax defaults (every conv
  is followed by BN).

  Attributes:
    width: channels of the first stage.
  """

  width: int = 32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    """`Features` (see `Backbone`): ``pooled`` ``[B, 4 * width]``, ``blocks`` the
    three stage outputs after their max-pool (32x32 input: 16x16, 8x8 and 8x8
    maps; 8x8 input: 4x4, 2x2 and 2x2)."""
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
