"""Semantic-segmentation networks: backbones with a per-pixel head.

A segmentation network is a `jal.models.MultiHeadNet` like every task model
in jal: a backbone returning `Features` (``pooled`` for CoreSet and the
rotation head, ``blocks`` for Learning Loss's module, ``image_size`` for
the heads) and a head returning per-pixel logits under ``'classifier'``.

* `MobileNetV2` + `DeepLabHead`: DeepLabv3 (Chen et al. 2017, "Rethinking
  atrous convolution for semantic image segmentation") on a MobileNetV2
  encoder (Sandler et al. 2018), PAL's network for Cityscapes (Bhatnagar et
  al. 2021, Table 2). The encoder is MobileNetV2's feature extractor without
  its last 1x1 conv to 1,280 channels, at output stride 16 (the last stride-2
  block dilated instead); the head is atrous spatial pyramid pooling (a 1x1
  conv, three 3x3 atrous convs at rates 6, 12, 18, image pooling; 256
  channels each, then a 1x1 projection with dropout), a 3x3 conv and a 1x1
  classifier. Its parameter count equals torchvision's
  ``mobilenet_v2().features[:-1]`` plus ``segmentation.deeplabv3.DeepLabHead
  (320, K)`` (experiments/segmentation_param_counts.py prints both).
* `SmallFCN` + `PixelClassifierHead`: a small fully convolutional network for
  CPU runs: conv-BN-ReLU stages at full and half resolution, a 1x1 classifier.

Logits are upsampled to the input size (bilinear, as DeepLab does) in float32.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Backbone, Features
from jal.models.layers import batch_norm, conv_bn_relu, mc_dropout

# MobileNetV2's inverted residual stages (Sandler et al. 2018, Table 2):
# expansion t, output channels c, repeats n, first stride s.
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def _conv(features: int, kernel: int, *, stride: int = 1, dilation: int = 1, groups: int = 1,
          bias: bool = False, dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
  pad = dilation * (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                 kernel_dilation=dilation, feature_group_count=groups, use_bias=bias,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


class InvertedResidual(nn.Module):
  """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 linear projection;
  a residual connection when the stride is 1 and the channels agree."""
  out_channels: int
  stride: int
  expansion: int
  dilation: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    in_channels = x.shape[-1]
    hidden = int(round(in_channels * self.expansion))
    y = x
    if self.expansion != 1:
      y = jax.nn.relu6(batch_norm(train, self.dtype)(_conv(hidden, 1, dtype=self.dtype)(y)))
    y = _conv(hidden, 3, stride=self.stride, dilation=self.dilation, groups=hidden,
              dtype=self.dtype)(y)
    y = jax.nn.relu6(batch_norm(train, self.dtype)(y))
    y = batch_norm(train, self.dtype)(_conv(self.out_channels, 1, dtype=self.dtype)(y))
    if self.stride == 1 and in_channels == self.out_channels:
      y = y + x
    return y


class MobileNetV2(Backbone):
  """MobileNetV2's feature extractor (without the final 1x1 conv) as a backbone.

  At ``output_stride`` 16 or 32: from the block where a stride would pass it,
  strides become dilations. `Features`: ``blocks`` the outputs of the stages
  that end at strides 4, 8, 16 and the last (320 channels), ``pooled`` the
  last one's global average, ``image_size`` the input's. With
  ``dropout_rate``, MC dropout on the last block (`jal.models.layers.mc_dropout`).
  """
  output_stride: int = 16

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    image_size = tuple(x.shape[1:3])
    x = _conv(32, 3, stride=2, dtype=self.dtype)(x.astype(self.dtype))
    x = jax.nn.relu6(batch_norm(train, self.dtype)(x))
    stride_so_far, dilation, blocks = 2, 1, []
    for t, c, n, s in MOBILENET_V2_STAGES:
      for i in range(n):
        stride = s if i == 0 else 1
        if stride == 2 and stride_so_far >= self.output_stride:
          stride, dilation = 1, dilation * 2
        elif stride == 2:
          stride_so_far *= 2
        x = InvertedResidual(c, stride, t, dilation, dtype=self.dtype)(x, train)
      if c in (24, 32, 96):  # the stages ending at strides 4, 8 and 16
        blocks.append(x)
    x = mc_dropout(self, x, self.dropout_rate)
    blocks.append(x)
    return Features(pooled=jnp.mean(x.astype(jnp.float32), axis=(1, 2)), blocks=tuple(blocks),
                    image_size=image_size)


class ASPP(nn.Module):
  """Atrous spatial pyramid pooling (Chen et al. 2017, Sec. 3.3), ``channels`` per branch."""
  rates: Sequence[int] = (6, 12, 18)
  channels: int = 256
  dropout_rate: float = 0.5
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    def unit(y, kernel, dilation=1):
      y = _conv(self.channels, kernel, dilation=dilation, dtype=self.dtype)(y)
      return nn.relu(batch_norm(train, self.dtype)(y))

    branches = [unit(x, 1)] + [unit(x, 3, rate) for rate in self.rates]
    pooled = unit(jnp.mean(x, axis=(1, 2), keepdims=True), 1)
    branches.append(jnp.broadcast_to(pooled, branches[0].shape))
    y = unit(jnp.concatenate(branches, axis=-1), 1)
    return nn.Dropout(self.dropout_rate, deterministic=not train)(y)


def _upsample(logits: jax.Array, size: tuple[int, int]) -> jax.Array:
  b, _, _, k = logits.shape
  return jax.image.resize(logits.astype(jnp.float32), (b, *size, k), 'bilinear')


class DeepLabHead(nn.Module):
  """DeepLabv3's head on the backbone's last block: ASPP, a 3x3 conv, a 1x1 classifier.

  Returns float32 ``[B, H, W, K]`` logits, upsampled (bilinear) to
  ``features.image_size``. Dropout in the ASPP projection in training only.
  """
  num_classes: int
  rates: Sequence[int] = (6, 12, 18)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, features: Features, train: bool = False) -> jax.Array:
    y = ASPP(self.rates, dtype=self.dtype)(features.blocks[-1], train)
    y = nn.relu(batch_norm(train, self.dtype)(_conv(256, 3, dtype=self.dtype)(y)))
    logits = _conv(self.num_classes, 1, bias=True, dtype=self.dtype)(y)
    return _upsample(logits, features.image_size)


class PixelClassifierHead(nn.Module):
  """A 1x1 convolution to ``num_classes`` on the last block, upsampled to the image size.

  The classifier of FCN-style networks (`SmallFCN`; DRN's segmentation
  network, Yu et al. 2017). Returns float32 ``[B, H, W, K]`` logits.
  """
  num_classes: int

  @nn.compact
  def __call__(self, features: Features, train: bool = False) -> jax.Array:
    del train
    logits = nn.Conv(self.num_classes, (1, 1), param_dtype=jnp.float32,
                     dtype=features.blocks[-1].dtype)(features.blocks[-1])
    return _upsample(logits, features.image_size)


class SmallFCN(Backbone):
  """A small fully convolutional backbone for CPU runs (see the module docstring).

  Three conv-BN-ReLU units (3x3) of ``width``, ``2 width``, ``2 width``
  channels, the second at stride 2 (a 2x2 max-pool before it). `Features`:
  ``blocks`` the three unit outputs, ``pooled`` the last one's average.
  """
  width: int = 16

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    image_size = tuple(x.shape[1:3])
    y, blocks = x.astype(self.dtype), []
    for index, channels in enumerate((self.width, 2 * self.width, 2 * self.width)):
      if index == 1:
        y = nn.max_pool(y, (2, 2), strides=(2, 2), padding='SAME')
      y = conv_bn_relu(self, y, channels, train=train, dtype=self.dtype,
                       dropout_rate=self.dropout_rate, conv_name=f'conv{index + 1}',
                       bn_name=f'bn{index + 1}')
      blocks.append(y)
    return Features(pooled=jnp.mean(y.astype(jnp.float32), axis=(1, 2)), blocks=tuple(blocks),
                    image_size=image_size)
