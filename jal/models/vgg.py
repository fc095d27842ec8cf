"""VGG-16 with batch norm for small images (the CIFAR variant).

Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image
Recognition", ICLR 2015, with batch normalisation (Ioffe & Szegedy, ICML 2015)
after every conv, in the form used by the common CIFAR PyTorch code
(kuangliu/pytorch-cifar): five conv groups, each followed by a 2x2 max-pool,
and a single linear classifier on the 512 features (not part of this module).

Initialisation: flax defaults (LeCun-normal conv kernels, zero biases); every
conv is followed by batch norm, which normalises away the scale of its initial
weights (kuangliu's code also keeps the framework's default init).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Backbone, Features
from jal.models.layers import conv_bn_relu, max_pool_2x2

# Channels of each conv of each group, as multiples of `width` (64 in VGG-16:
# 64,64,M,128,128,M,256,256,256,M,512,512,512,M,512,512,512,M).
_GROUPS = ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8))


class VGG16(Backbone):
  """CIFAR VGG-16 with batch norm, without the classifier.

  Thirteen 3x3 convs (with bias, padding 1), each followed by BN and ReLU, in
  five groups of ``w, w | 2w, 2w | 4w x3 | 8w x3 | 8w x3`` channels, each group
  followed by a 2x2 max-pool (skipped along axes already of size 1), then
  global average pooling. On 32x32 inputs the last map is 1x1, so the pooling
  equals kuangliu's flatten; with ``width=64`` and a 10-class linear classifier
  on top the parameter count equals kuangliu's VGG16 (14,728,266).

  Attributes:
    width: channels of the first group (64 in VGG-16).
  """

  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    """`Features` (see `Backbone`): ``pooled`` ``[B, 8 * width]``, ``blocks`` the
    output of each of the five groups after its max-pool (32x32 input:
    16x16, 8x8, 4x4, 2x2, 1x1)."""
    blocks = []
    for group, multipliers in enumerate(_GROUPS):
      for index, multiplier in enumerate(multipliers):
        x = conv_bn_relu(self, x, self.width * multiplier, train=train, dtype=self.dtype,
                         dropout_rate=self.dropout_rate,
                         conv_name=f'group{group + 1}_conv{index + 1}',
                         bn_name=f'group{group + 1}_bn{index + 1}')
      x = max_pool_2x2(x)
      blocks.append(x)
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return Features(pooled=pooled, blocks=tuple(blocks))
