"""What a backbone is: images in, pooled penultimate features and per-stage maps out."""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp


@flax.struct.dataclass
class Features:
  """The output of a backbone (a JAX pytree).

  Attributes:
    pooled: float32 array with shape ``[B, D]``; the penultimate features after
      global average pooling, i.e. what the last fully connected layer (the
      classifier) of the original architecture reads. ``D`` is the channel
      count of the last stage.
    blocks: one array per stage (ResNet, SmallCNN) or conv group (VGG), in
      order from input to output, each with shape ``[B, h, w, c]`` and the
      backbone's compute dtype. Methods that read intermediate features (e.g.
      the loss prediction module of Learning Loss, Yoo & Kweon 2019) use these.
      A segmentation head reads the last one.
    image_size: ``(H, W)`` of the input (static, not a traced array): the
      size a segmentation head upsamples its logits to. Set by the
      segmentation backbones; None where no head needs it.
  """

  pooled: jax.Array
  blocks: tuple[jax.Array, ...]
  # (H, W) of the input image, static: where a segmentation head upsamples its logits to.
  image_size: tuple[int, int] | None = flax.struct.field(pytree_node=False, default=None)


class Backbone(nn.Module):
  """A network from images to `Features`, without a classifier: the base of every backbone.

  Called as ``backbone(x, train)``: ``x`` float ``[B, H, W, C]``, already
  normalised; ``train`` True uses the batch statistics in batch norm and
  updates its running averages (apply with ``mutable=['batch_stats']``),
  False uses the running averages. Returns `Features`: ``pooled`` in
  float32, ``blocks`` in ``dtype``.

  Attributes:
    dtype: compute dtype (e.g. ``jnp.bfloat16``); parameters stay float32.
    dropout_rate: MC dropout after the convolutions, active only with a
      ``'dropout'`` PRNG stream (`jal.models.layers.mc_dropout`); 0
      (default): none.
    own_dropout: (class attribute) whether the architecture has dropout
      layers of its own, at positions and rates it defines (the DBAL CNN of
      Gal et al. 2017); they are trained with and sampled by MC dropout's
      ``'network'`` placement (`jal.strategies.mc_dropout`). False for the
      others.
  """

  own_dropout: ClassVar[bool] = False

  dtype: Any = jnp.float32
  dropout_rate: float = 0.0
