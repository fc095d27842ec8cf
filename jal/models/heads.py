"""Heads on top of a backbone's features, and the network that combines them."""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from flax.core import FrozenDict

from jal.errors import JalError
from jal.models.dropout import mc_dropout
from jal.models.features import Features


class ClassifierHead(nn.Module):
  """A linear classifier on the pooled features (the backbone's last FC layer).

  Attributes:
    num_classes: number of classes.
    dropout_rate: MC dropout on the features before the layer (the
      last-layer MC-dropout variants of BALD / DBAL), active only with a
      ``'dropout'`` PRNG stream; 0 (default): none.
  """

  num_classes: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, features: Features, train: bool = False,
               stop_gradient: bool = False) -> jax.Array:
    """Computes class logits.

    Args:
      features: the backbone's output; reads ``features.pooled`` ``[B, D]``.
      train: unused (every head takes it).
      stop_gradient: when true no gradient flows from this head into the
        backbone (a linear classifier on frozen features: SCAL's second stage).

    Returns:
      float32 logits with shape ``[B, num_classes]``.
    """
    del train
    x = features.pooled.astype(jnp.float32)
    if stop_gradient:
      x = jax.lax.stop_gradient(x)
    x = mc_dropout(self, x, self.dropout_rate)
    return nn.Dense(self.num_classes, dtype=jnp.float32, param_dtype=jnp.float32, name='fc')(x)


class RotationHead(ClassifierHead):
  """The rotation pretext head of PAL (Bhatnagar et al. 2020).

  A linear layer on the pooled features that predicts by how much the input
  was rotated: class ``k`` means ``k * 90`` degrees, for ``k`` in 0..3. It
  returns float32 logits with shape ``[B, 4]``.
  """

  num_classes: int = 4


class ProjectionHead(nn.Module):
  """The projection head of supervised contrastive learning (Khosla et al. 2020).

  ``Dense(hidden) -> ReLU -> Dense(dim)`` on the pooled features, L2-normalised
  (the ``'mlp'`` head of Khosla et al.'s ``SupConResNet``: hidden = the
  feature width, dim = 128). The contrastive loss reads it; the query reads
  the features before it.

  Attributes:
    dim: output dimension (128).
    hidden: units of the hidden layer; None: the feature width.
  """

  dim: int = 128
  hidden: int | None = None

  @nn.compact
  def __call__(self, features: Features, train: bool = False) -> jax.Array:
    """float32 ``[B, dim]`` unit vectors from ``features.pooled`` ``[B, D]``."""
    del train
    x = features.pooled.astype(jnp.float32)
    x = nn.relu(nn.Dense(self.hidden or x.shape[-1], name='fc1')(x))
    x = nn.Dense(self.dim, name='fc2')(x)
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


class LossPredictionHead(nn.Module):
  """The loss prediction module of Learning Loss (Yoo & Kweon, CVPR 2019, Fig. 3).

  Each of the backbone's blocks goes through global average pooling, a fully
  connected layer of ``width`` units and a ReLU; the concatenation goes
  through a fully connected layer to one number, the predicted loss. TA-VAAL
  (paper 004) uses the same module as its ranker.

  Attributes:
    width: units of each block's layer (128 in Yoo & Kweon).
  """

  width: int = 128

  @nn.compact
  def __call__(self, features: Features, train: bool = False,
               stop_gradient: jax.Array | bool = False) -> jax.Array:
    """Predicts the loss of each example.

    Args:
      features: the backbone's output; reads ``features.blocks``, each
        ``[B, h, w, c]``.
      train: unused.
      stop_gradient: bool scalar (may be traced); when true no gradient flows
        from this head into the backbone (Learning Loss stops it after 60% of
        the epochs). Applied after the pooling, which is linear, so it cuts
        the backbone's gradient exactly and costs ``O(B c)``, not ``O(B h w c)``.

    Returns:
      float32 with shape ``[B]``: the predicted losses (unnormalised scores;
      only their order is trained).
    """
    del train
    pooled = []
    for index, block in enumerate(features.blocks):
      x = jnp.mean(block.astype(jnp.float32), axis=(1, 2))
      x = jnp.where(stop_gradient, jax.lax.stop_gradient(x), x)
      pooled.append(nn.relu(nn.Dense(self.width, name=f'block{index + 1}_fc')(x)))
    return nn.Dense(1, name='fc')(jnp.concatenate(pooled, axis=-1))[:, 0]


class MultiHeadNet(nn.Module):
  """A backbone with any number of named heads on its features.

  Every head is a module called as ``head(features, train=train)`` with the
  backbone's `Features`; methods add heads (loss prediction, projection,
  cosine classifier, ...) without new backbones.

  Parameter names: the backbone's parameters are under ``'backbone'`` and the
  head named ``name`` is under ``f'heads_{name}'`` (flax names the modules in a
  dict attribute ``<attribute>_<key>``), e.g. for heads ``{'classifier': ...,
  'rotation': ...}``: ``params`` has the keys ``'backbone'``,
  ``'heads_classifier'`` and ``'heads_rotation'``; ``batch_stats`` has
  ``'backbone'`` (and any head with BN under its own key).

  ``heads`` is stored as a `FrozenDict` (a plain dict would make the module
  unhashable, so it could not be a static argument of ``jax.jit``); the names
  and the output are the same.

  Attributes:
    backbone: a module ``backbone(x, train) -> Features``, e.g. `ResNet18`.
    heads: the heads by name; a name may not be ``'features'`` (raises
      `JalError` when the module is constructed).
  """

  backbone: nn.Module
  heads: Mapping[str, nn.Module]

  def __post_init__(self) -> None:
    if 'features' in self.heads:
      raise JalError("MultiHeadNet: a head may not be named 'features' (that key holds the pooled features)")
    if not isinstance(self.heads, FrozenDict):
      object.__setattr__(self, 'heads', FrozenDict(self.heads))
    super().__post_init__()

  def __call__(self, x: jax.Array, train: bool,
               head_args: Mapping[str, Mapping[str, jax.Array]] | None = None
               ) -> dict[str, jax.Array]:
    """Runs the backbone and every head.

    Args:
      x: float array with shape ``[B, H, W, C]``, already normalised.
      train: passed to the backbone and to every head; in train mode apply
        with ``mutable=['batch_stats']``.
      head_args: optional extra keyword arguments by head name (e.g.
        ``{'loss_prediction': {'stop_gradient': flag}}``).

    Returns:
      One entry per head name with that head's output, plus ``'features'``:
      the float32 pooled features ``[B, D]``.
    """
    features = self.backbone(x, train)
    head_args = head_args or {}
    outputs = {name: head(features, train=train, **head_args.get(name, {}))
               for name, head in self.heads.items()}
    outputs['features'] = features.pooled
    return outputs
