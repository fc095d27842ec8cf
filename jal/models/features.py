"""What a backbone returns: pooled penultimate features and per-stage maps."""

from __future__ import annotations

import flax.struct
import jax


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
  """

  pooled: jax.Array
  blocks: tuple[jax.Array, ...]
