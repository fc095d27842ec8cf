"""DRN-D-22, the dilated residual network of Yu, Koltun & Funkhouser, as a segmentation backbone.

Yu, Koltun & Funkhouser, "Dilated Residual Networks", CVPR 2017. A ResNet
whose last two stages keep the resolution of the stage before them (output
stride 8 instead of 32) and dilate their convolutions instead (by 2 and 4),
so that the receptive field grows as in the ResNet while the last feature
map stays dense enough for per-pixel prediction. TA-VAAL and MAL use a DRN as the
segmentation task model; with `jal.models.segmentation_nets.PixelClassifierHead`
on top (a 1x1 conv with bias, bilinear upsampling) this backbone is the
authors' segmentation network ``DRNSeg('drn_d_22', K)``.

The architecture follows the authors' code (github.com/fyu/drn, ``drn.py``:
``drn_d_22``, ``DRN(BasicBlock, [1, 1, 2, 2, 2, 2, 1, 1], arch='D')``): a stem
(level 0) and eight levels with channels 16, 32, 64, 128, 256, 512, 512, 512.

* Level 0: a 7x7 conv (stride 1, padding 3), BN, ReLU.
* Levels 1-2: a 3x3 conv-BN-ReLU each, the second at stride 2. Levels 0-2
  replace ResNet's stride-2 7x7 conv and max-pool (DRN-D, Sec. 4: max
  pooling leads to gridding artifacts), at output stride 2.
* Levels 3-4: two ResNet basic blocks each, the first at stride 2 with a
  projection shortcut (1x1 conv at the stride, BN).
* Levels 5-6: two basic blocks each at stride 1, dilation 2 and 4 (the
  strides of ResNet's last two stages, removed); a projection shortcut on
  the first block (the channels change).
* Levels 7-8: a 3x3 conv-BN-ReLU each, dilation 2 and 1, without residual
  connection: DRN-D's "degridding" (Sec. 4 of the paper), which removes
  the gridding artifacts of the dilated levels.

No conv has a bias (each is followed by BN). Padding equals the dilation for
3x3 convs, as in the reference, so the spatial size is ``ceil(H / 8)`` after
levels 3-4 (PyTorch's arithmetic, not flax's ``'SAME'``). Convs are
initialised like the reference, normal with variance ``2 / (k * k *
C_out)`` (He, fan-out), BN scale 1 and bias 0.

The authors' segmentation network takes the classification network without
its average pool and fc (levels 0-8), adds a 1x1 conv with bias to the
classes and upsamples by 8 with a ConvTranspose2d fixed to bilinear weights
(``requires_grad=False``). jal upsamples with `jax.image.resize` (bilinear)
to the input size instead, so the trainable parameters are the same:
15,880,752 in the backbone, 15,890,499 with a 19-class head
(experiments/segmentation_param_counts.py prints both sides; the test checks
them).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Backbone, Features
from jal.models.layers import batch_norm, mc_dropout

# DRN's channels per level 0-8 (the reference's ``channels``, level 0 sharing
# level 1's 16) and DRN-D-22's number of units per level 1-8 (``layers``).
DRN_CHANNELS = (16, 16, 32, 64, 128, 256, 512, 512, 512)
DRN_D_22_LAYERS = (1, 1, 2, 2, 2, 2, 1, 1)
# The reference's initialisation: normal, std sqrt(2 / (k * k * C_out)).
_HE_FAN_OUT = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')


def _conv(features: int, kernel: int, *, stride: int = 1, dilation: int = 1,
          dtype: Any = jnp.float32, name: str | None = None) -> nn.Conv:
  """A bias-free conv padded like PyTorch's ``padding=dilation * (kernel - 1) // 2``."""
  pad = dilation * (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=((pad, pad), (pad, pad)),
                 kernel_dilation=dilation, use_bias=False, kernel_init=_HE_FAN_OUT,
                 dtype=dtype, param_dtype=jnp.float32, name=name)


class DilatedBasicBlock(nn.Module):
  """ResNet's basic block with dilated 3x3 convs (the reference's ``BasicBlock``).

  ``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))``, the shortcut a
  1x1 conv at ``stride`` and BN when the stride or the channels change, else
  the identity.

  Attributes:
    features: output channels.
    stride: stride of ``conv1`` and of the shortcut (1 or 2).
    dilation: dilations of ``conv1`` and ``conv2``.
    dtype: compute dtype; parameters stay float32.
  """
  features: int
  stride: int = 1
  dilation: tuple[int, int] = (1, 1)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """``[B, H, W, C_in]`` to ``[B, ceil(H / stride), ceil(W / stride), features]`` in ``dtype``."""
    y = _conv(self.features, 3, stride=self.stride, dilation=self.dilation[0], dtype=self.dtype,
              name='conv1')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    y = _conv(self.features, 3, dilation=self.dilation[1], dtype=self.dtype, name='conv2')(y)
    y = batch_norm(train, self.dtype, 'bn2')(y)
    shortcut = x
    if self.stride != 1 or x.shape[-1] != self.features:
      shortcut = _conv(self.features, 1, stride=self.stride, dtype=self.dtype,
                       name='downsample_conv')(x)
      shortcut = batch_norm(train, self.dtype, 'downsample_bn')(shortcut)
    return nn.relu(y + shortcut)


class DRND22(Backbone):
  """DRN-D-22 (Yu et al. 2017) without its classifier: levels 0-8, output stride 8.

  Called as ``backbone(x, train)`` with ``x`` float ``[B, H, W, 3]``, already
  normalised. Returns `Features`:

  * ``blocks``: the outputs of levels 3-8 in ``dtype``: ``[B, H/4, W/4, 64]``,
    ``[B, H/8, W/8, 128]``, ``[B, H/8, W/8, 256]`` and three ``[B, H/8, W/8,
    512]`` (sizes rounded up). The last is what a segmentation head reads;
    with ``dropout_rate`` it has gone through MC dropout
    (`jal.models.layers.mc_dropout`).
  * ``pooled``: float32 ``[B, 512]``, the last block's global average.
  * ``image_size``: ``(H, W)``, where a head upsamples its logits to.

  Parameter names follow the reference's levels: ``layer0_conv``,
  ``layer0_bn``, ``layer1_conv``, ..., ``layer3_block1`` (with ``conv1``,
  ``bn1``, ``conv2``, ``bn2``, ``downsample_conv``, ``downsample_bn``), ...,
  ``layer8_bn``.
  """

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    image_size = tuple(x.shape[1:3])
    y = x.astype(self.dtype)

    def conv_bn_relu(y, level, *, kernel=3, stride=1, dilation=1):
      y = _conv(DRN_CHANNELS[level], kernel, stride=stride, dilation=dilation, dtype=self.dtype,
                name=f'layer{level}_conv')(y)
      return nn.relu(batch_norm(train, self.dtype, f'layer{level}_bn')(y))

    def residual_level(y, level, *, stride=1, dilation=1):
      for index in range(DRN_D_22_LAYERS[level - 1]):
        y = DilatedBasicBlock(DRN_CHANNELS[level], stride=stride if index == 0 else 1,
                              dilation=(dilation, dilation), dtype=self.dtype,
                              name=f'layer{level}_block{index + 1}')(y, train)
      return y

    y = conv_bn_relu(y, 0, kernel=7)
    y = conv_bn_relu(y, 1)
    y = conv_bn_relu(y, 2, stride=2)
    blocks = []
    # Levels 3-6: (stride, dilation), both blocks of a level at its dilation
    # (the reference halves the first block's only with new_level, which 5 and
    # 6 are not).
    for level, (stride, dilation) in zip((3, 4, 5, 6), ((2, 1), (2, 1), (1, 2), (1, 4))):
      y = residual_level(y, level, stride=stride, dilation=dilation)
      blocks.append(y)
    # Levels 7-8, degridding: conv-BN-ReLU without residual, dilation 2 then 1.
    y = conv_bn_relu(y, 7, dilation=2)
    blocks.append(y)
    y = conv_bn_relu(y, 8)
    y = mc_dropout(self, y, self.dropout_rate)
    blocks.append(y)
    return Features(pooled=jnp.mean(y.astype(jnp.float32), axis=(1, 2)), blocks=tuple(blocks),
                    image_size=image_size)
