"""Semantic-segmentation networks: images in, class logits per pixel out.

* `DeepLabV3`: DeepLabv3 (Chen et al. 2017, "Rethinking atrous convolution
  for semantic image segmentation") on a MobileNetV2 encoder (Sandler et al.
  2018), PAL's network for Cityscapes (Bhatnagar et al. 2020, Table 2). The
  encoder is MobileNetV2's feature extractor without its last 1x1 conv to
  1,280 channels, at output stride 16 (the last stride-2 block dilated
  instead); the head is atrous spatial pyramid pooling (a 1x1 conv, three 3x3
  atrous convs at rates 6, 12, 18, image pooling; 256 channels each, then a
  1x1 projection with dropout), a 3x3 conv and a 1x1 classifier. Its
  parameter count equals torchvision's ``mobilenet_v2().features[:-1]`` plus
  ``segmentation.deeplabv3.DeepLabHead(320, K)`` (experiments/segmentation_
  param_counts.py prints both).
* `SmallFCN`: a small fully convolutional network for CPU runs: two
  conv-BN-ReLU stages at full and half resolution and a 1x1 classifier.

Logits are upsampled to the input size (bilinear, as DeepLab does) and
returned in float32 with the encoder's output (``features``, for CoreSet's
pooled features and MAL's discriminator).
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.layers import batch_norm

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


class MobileNetV2Encoder(nn.Module):
  """MobileNetV2's feature extractor (without the final 1x1 conv), at ``output_stride``
  16 or 32: from the block where the stride would pass it, strides become dilations."""
  output_stride: int = 16
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    x = _conv(32, 3, stride=2, dtype=self.dtype)(x.astype(self.dtype))
    x = jax.nn.relu6(batch_norm(train, self.dtype)(x))
    stride_so_far, dilation = 2, 1
    for t, c, n, s in MOBILENET_V2_STAGES:
      for i in range(n):
        stride = s if i == 0 else 1
        if stride == 2 and stride_so_far >= self.output_stride:
          stride, dilation = 1, dilation * 2
        elif stride == 2:
          stride_so_far *= 2
        x = InvertedResidual(c, stride, t, dilation, dtype=self.dtype)(x, train)
    return x


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


class DeepLabV3(nn.Module):
  """DeepLabv3 with a MobileNetV2 encoder; see the module docstring.

  Called as ``net(x, train)`` on normalised float ``[B, H, W, 3]``; dropout in
  training needs a ``'dropout'`` PRNG stream. Returns ``{'logits': float32
  [B, H, W, K], 'features': [B, H/16, W/16, 320]}``.
  """
  num_classes: int
  output_stride: int = 16
  rates: Sequence[int] = (6, 12, 18)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    features = MobileNetV2Encoder(self.output_stride, dtype=self.dtype)(x, train)
    y = ASPP(self.rates, dtype=self.dtype)(features, train)
    y = nn.relu(batch_norm(train, self.dtype)(_conv(256, 3, dtype=self.dtype)(y)))
    logits = _conv(self.num_classes, 1, bias=True, dtype=self.dtype)(y)
    return {'logits': _upsample(logits, x.shape[1:3]), 'features': features}


class SmallFCN(nn.Module):
  """A small fully convolutional network for CPU runs (see the module docstring).

  Returns ``{'logits': float32 [B, H, W, K], 'features': [B, H/2, W/2, 2 width]}``.
  """
  num_classes: int
  width: int = 16
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    y = x.astype(self.dtype)
    for stride, channels in ((1, self.width), (2, 2 * self.width), (1, 2 * self.width)):
      y = _conv(channels, 3, stride=stride, dtype=self.dtype)(y)
      y = nn.relu(batch_norm(train, self.dtype)(y))
    logits = _conv(self.num_classes, 1, bias=True, dtype=self.dtype)(y)
    return {'logits': _upsample(logits, x.shape[1:3]), 'features': y}
