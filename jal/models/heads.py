"""Heads on top of a backbone's features, and the network that combines them.

Every head is called as ``head(features, train=train, **head_args)`` with
the backbone's `Features` and returns an array with a leading batch axis.
"""

from __future__ import annotations

from typing import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from flax.core import FrozenDict

from jal.errors import JalError
from jal.models.features import Features
from jal.models.layers import gradient_reversal, l2_normalize, mc_dropout


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
  """The rotation pretext head of PAL (Bhatnagar et al. 2021).

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
    return l2_normalize(nn.Dense(self.dim, name='fc2')(x))


class LossPredictionHead(nn.Module):
  """The loss prediction module of Learning Loss (Yoo & Kweon, CVPR 2019, Fig. 3).

  Each of the backbone's blocks goes through global average pooling, a fully
  connected layer of ``width`` units and a ReLU; the concatenation goes
  through a fully connected layer to one number, the predicted loss. TA-VAAL
  (Kim et al. 2021) uses the same module as its ranker.

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


class CosineClassifier(nn.Module):
  """MAL's classifier C (Ebrahimi et al. 2020, Sec. 3.1, Eq. 1).

  ``logits = W^T f / (||f|| T)``: the features are ℓ2-normalised, multiplied
  by the prototype matrix ``W`` (``[D, K]``, no bias) and divided by the
  temperature ``T``; the softmax of the logits is Eq. 1's ``p``. As in Eq. 1
  only the features are normalised, not the columns of ``W`` (nor does MME,
  Saito et al. ICCV 2019, which MAL follows for C, normalise them in the
  forward pass); so a logit is ``||w_k|| cos(w_k, f) / T``.
  ``normalize_weights=True`` also normalises each column ``w_k`` (Chen et al.
  ICLR 2019's Baseline++, MAL's ref. [8]): logits are then exactly cosines
  over ``T``.

  ``hidden``: MAL's appendix (App. B) gives C 156.93K parameters with
  ResNet-18 on CIFAR-100, which is exactly a fully connected layer 512 -> 256
  with bias before the prototypes (131,328 + 256 x 100 = 156,928): the
  structure of MME's ``Predictor_deep``, where the normalised vector is that
  layer's output. Eq. 1 has no such layer; ``hidden=None`` (default) is Eq. 1
  as written, ``hidden=256`` the appendix's C.

  Attributes:
    num_classes: ``K``.
    temperature: ``T`` > 0. MAL does not give its value; the default 0.05 is
      MME's.
    normalize_weights: also ℓ2-normalise the columns of ``W`` (default False,
      as in Eq. 1).
    hidden: units of a fully connected layer (with bias, no activation)
      before the normalisation; None: none.
    per_pixel: MAL's C for segmentation (Sec. 3.2): the same prototypes as
      1x1 convolution filters on the ℓ2-normalised ``d x h x w`` latent
      tensor (the backbone's last block), the ``K x h x w`` logits then
      upsampled (bilinear) to the image size.
  """

  num_classes: int
  temperature: float = 0.05
  normalize_weights: bool = False
  hidden: int | None = None
  per_pixel: bool = False

  @nn.compact
  def __call__(self, features: Features | jax.Array, train: bool = False,
               reverse_gradient: float | jax.Array | None = None) -> jax.Array:
    """Computes class logits.

    Args:
      features: a backbone's `Features` (reads ``pooled``) or float features
        ``[B, D]``.
      train: unused (every head takes it).
      reverse_gradient: if given, the features pass through a gradient
        reversal layer of this weight first (`jal.models.layers.gradient_reversal`):
        MAL's minimax entropy puts it between F and C (Sec. 3.1).

    Returns:
      float32 logits ``[B, num_classes]`` (``per_pixel``: ``[B, H, W,
      num_classes]``); without ``hidden``, invariant to scaling the features
      by any positive constant.
    """
    del train
    if self.per_pixel:
      f = features.blocks[-1]
    else:
      f = features.pooled if isinstance(features, Features) else features
    f = jnp.asarray(f).astype(jnp.float32)
    if reverse_gradient is not None:
      f = gradient_reversal(f, reverse_gradient)
    if self.hidden is not None:
      f = nn.Dense(self.hidden, name='hidden')(f)
    f = l2_normalize(f)
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (f.shape[-1], self.num_classes),
                        jnp.float32)
    if self.normalize_weights:
      kernel = l2_normalize(kernel, axis=0)
    logits = f @ kernel / self.temperature
    if self.per_pixel:
      b, _, _, k = logits.shape
      logits = jax.image.resize(logits, (b, *features.image_size, k), 'bilinear')
    return logits


class SpatialFeatures(nn.Module):
  """The backbone's last block as a head's output: float32 ``[B, h, w, c]``.

  What reads a segmentation network's latent tensor rather than its pooled
  vector: MAL's discriminator on ``d x h x w`` inputs (Sec. 3.2).
  """

  @nn.compact
  def __call__(self, features: Features, train: bool = False) -> jax.Array:
    del train
    return features.blocks[-1].astype(jnp.float32)


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
