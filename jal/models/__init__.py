"""Networks, as flax.linen modules: backbones, heads, discriminators, the VAE.

A backbone maps normalised images ``[B, H, W, C]`` to `Features` (no
classifier); heads read `Features`; `MultiHeadNet` combines one backbone with
named heads; `Ensemble` trains M copies of a network as one. The layers the
networks share are in `jal.models.layers`.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jal.errors import JalError
from jal.models.dbal_cnn import DBALCNN
from jal.models.drn import DRND22
from jal.models.discriminators import ConvDiscriminator, LatentDiscriminator, MLPDiscriminator
from jal.models.ensemble import Ensemble
from jal.models.features import Backbone, Features
from jal.models.heads import (ClassifierHead, CosineClassifier, LossPredictionHead, MultiHeadNet,
                              ProjectionHead, RotationHead, SpatialFeatures)
from jal.models.resnet import ResNet18
from jal.models.segmentation_nets import DeepLabHead, MobileNetV2, PixelClassifierHead, SmallFCN
from jal.models.small_cnn import SmallCNN
from jal.models.vae import VAE
from jal.models.vgg import VGG16

__all__ = [
    'BACKBONES',
    'Backbone',
    'ClassifierHead',
    'ConvDiscriminator',
    'DBALCNN',
    'DRND22',
    'DeepLabHead',
    'CosineClassifier',
    'Ensemble',
    'Features',
    'LatentDiscriminator',
    'LossPredictionHead',
    'MLPDiscriminator',
    'MobileNetV2',
    'MultiHeadNet',
    'PixelClassifierHead',
    'ProjectionHead',
    'ResNet18',
    'RotationHead',
    'SmallCNN',
    'SmallFCN',
    'SpatialFeatures',
    'VAE',
    'VGG16',
    'compute_dtype',
    'get_backbone',
]

# Backbone classes by name; each takes `width` and `dtype`.
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    'resnet18': ResNet18,
    'vgg16': VGG16,
    'small_cnn': SmallCNN,
    # Gal, Islam & Ghahramani 2017's MNIST network, with dropout of its own.
    'dbal_cnn': DBALCNN,
    # Segmentation backbones (`jal.models.segmentation_nets`): spatial blocks
    # and the image size for a per-pixel head.
    'mobilenet_v2': MobileNetV2,
    'drn_d_22': DRND22,
    'small_fcn': SmallFCN,
}
# Backbones without a width setting.
_FIXED_WIDTH = frozenset({'mobilenet_v2', 'drn_d_22'})


# Compute dtypes by config name; parameters are float32 whatever the choice.
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def compute_dtype(name: Any) -> Any:
  """The jnp dtype for a config's ``dtype`` string (``'float32'`` or ``'bfloat16'``).

  Raises:
    JalError: for any other name.
  """
  if isinstance(name, str) and name in COMPUTE_DTYPES:
    return COMPUTE_DTYPES[name]
  if any(name is d for d in COMPUTE_DTYPES.values()):
    return name
  raise JalError(f'unknown compute dtype {name!r}; use one of {", ".join(COMPUTE_DTYPES)} '
                 '(parameters stay float32 either way)')


def get_backbone(name: str, *, width: int | None = None, dtype: Any = jnp.float32,
                 dropout_rate: float = 0.0) -> nn.Module:
  """Builds a backbone by name.

  Args:
    name: one of ``'resnet18'``, ``'vgg16'``, ``'small_cnn'``,
      ``'dbal_cnn'`` (Gal et al. 2017's MNIST CNN); for segmentation
      ``'mobilenet_v2'``, ``'drn_d_22'``, ``'small_fcn'``.
    width: channels of the first stage; None for the architecture's default
      (64 for ResNet-18 and VGG-16, 32 for the small CNN and the DBAL CNN).
    dtype: compute dtype, ``jnp.bfloat16`` or its name ``'bfloat16'`` (mixed
      precision: activations and matmuls in bf16, parameters, batch-norm
      statistics, heads and losses in float32), or float32.
    dropout_rate: MC dropout after the convolutions (ResNet-18: of its
      blocks), active only with a ``'dropout'`` PRNG stream; 0: none. The
      DBAL CNN's own dropout layers are there whatever this is.

  Returns:
    An unbound flax module ``backbone(x, train) -> Features``.

  Raises:
    JalError: the name or dtype is unknown, the width is not a positive
      integer or the dropout rate is not in ``[0, 1)``.
  """
  dtype = compute_dtype(dtype)
  if not 0.0 <= dropout_rate < 1.0:
    raise JalError(f'dropout rate must be in [0, 1), got {dropout_rate!r}')
  if name not in BACKBONES:
    raise JalError(f'unknown backbone {name!r}; known backbones: {", ".join(sorted(BACKBONES))}')
  if width is None:
    return BACKBONES[name](dtype=dtype, dropout_rate=dropout_rate)
  if name in _FIXED_WIDTH:
    raise JalError(f'backbone {name!r} has a fixed width; unset config.model.width')
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise JalError(f'backbone width must be a positive integer, got {width!r}')
  return BACKBONES[name](width=width, dtype=dtype, dropout_rate=dropout_rate)
