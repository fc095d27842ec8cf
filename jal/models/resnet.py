"""ResNet-18 for small images (the CIFAR variant).

He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
in the form used by the common CIFAR PyTorch code (kuangliu/pytorch-cifar): a
3x3 stride-1 stem with no max-pool, four stages of two BasicBlocks, and global
average pooling. Batch normalisation: Ioffe & Szegedy, ICML 2015.

Initialisation: flax defaults (LeCun-normal conv kernels, zero biases, BN scale
1 and bias 0). kuangliu's code does not use Kaiming-normal either (it keeps
PyTorch's default init), and every conv here is followed by batch norm, which
normalises away the scale of the conv's initial weights, so a fan-in scaled
normal init is as good as Kaiming's for training.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Backbone, Features
from jal.models.layers import PAD1, batch_norm, mc_dropout


class BasicBlock(nn.Module):
  """Two 3x3 convs with BN and a residual connection (ResNet-18/34 block).

  The shortcut is the identity when the shape is unchanged, else a projection
  (1x1 conv with ``strides`` and no bias, then BN), as in the reference code.

  MC dropout (``dropout_rate > 0``; the SCAL paper's BALD, Krishnan et al. 2021, App.
  A.3: "a dropout layer with probability of 0.3 after convolutional layers in
  the ResNet blocks") follows each of the block's two convolutions, after its
  activation: after ``relu(bn1(conv1))`` and after the block's output
  ``relu(bn2(conv2) + shortcut)``. The paper does not say where exactly; this
  keeps the residual sum and batch norm on undropped values. It is active
  only when the caller gives a ``'dropout'`` PRNG stream (`mc_dropout`).

  Attributes:
    features: output channels.
    strides: stride of the first conv and of the projection (1 or 2).
    dtype: compute dtype; parameters stay float32.
    dropout_rate: MC-dropout probability (0: no dropout layers).
  """

  features: int
  strides: int = 1
  dtype: Any = jnp.float32
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    """Applies the block.

    Args:
      x: array with shape ``[B, H, W, C_in]``.
      train: batch statistics (True) or running averages (False) in BN.

    Returns:
      Array with shape ``[B, ceil(H / strides), ceil(W / strides), features]``
      and dtype ``self.dtype``.
    """
    conv = lambda f, k, s, pad, name: nn.Conv(
        f, (k, k), strides=(s, s), padding=pad, use_bias=False,
        dtype=self.dtype, param_dtype=jnp.float32, name=name)
    y = conv(self.features, 3, self.strides, PAD1, 'conv1')(x)
    y = nn.relu(batch_norm(train, self.dtype, 'bn1')(y))
    y = mc_dropout(self, y, self.dropout_rate)
    y = conv(self.features, 3, 1, PAD1, 'conv2')(y)
    y = batch_norm(train, self.dtype, 'bn2')(y)
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = conv(self.features, 1, self.strides, 'VALID', 'shortcut_conv')(x)
      shortcut = batch_norm(train, self.dtype, 'shortcut_bn')(shortcut)
    return mc_dropout(self, nn.relu(y + shortcut), self.dropout_rate)


class ResNet18(Backbone):
  """CIFAR ResNet-18 backbone without the classifier (He et al. 2016).

  Stem: 3x3 conv (stride 1, no bias), BN, ReLU, no max-pool. Then four stages
  of two BasicBlocks with widths ``w, 2w, 4w, 8w`` and strides ``1, 2, 2, 2``,
  then global average pooling. With ``width=64`` and a 10-class linear
  classifier on top, the parameter count equals kuangliu/pytorch-cifar's
  ResNet18 (11,173,962).

  Attributes:
    width: channels of the first stage (64 in the paper's CIFAR variant).
    The MC dropout of `Backbone` follows the convolutions of every block
    (see `BasicBlock`).
  """

  width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    """`Features` (see `Backbone`): ``pooled`` ``[B, 8 * width]``, ``blocks`` the
    four stage outputs, ``[B, H, W, w]``, ``[B, H/2, W/2, 2w]``, ``[B, H/4,
    W/4, 4w]`` and ``[B, H/8, W/8, 8w]`` (sizes rounded up)."""
    x = nn.Conv(
        self.width, (3, 3), padding=PAD1, use_bias=False, dtype=self.dtype,
        param_dtype=jnp.float32, name='stem_conv')(x)
    x = nn.relu(batch_norm(train, self.dtype, 'stem_bn')(x))
    blocks = []
    for stage, (multiplier, strides) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2))):
      for index in range(2):
        x = BasicBlock(
            self.width * multiplier,
            strides=strides if index == 0 else 1,
            dtype=self.dtype,
            dropout_rate=self.dropout_rate,
            name=f'stage{stage + 1}_block{index + 1}')(x, train)
      blocks.append(x)
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return Features(pooled=pooled, blocks=tuple(blocks))
