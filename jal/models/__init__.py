"""Backbones and heads, as flax.linen modules.

A backbone maps normalised images ``[B, H, W, C]`` to `Features` (no
classifier); heads read `Features`; `MultiHeadNet` combines one backbone with
named heads.
"""

from __future__ import annotations

from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from jal.errors import JalError
from jal.models.features import Features
from jal.models.heads import ClassifierHead, MultiHeadNet, RotationHead
from jal.models.resnet import ResNet18
from jal.models.small_cnn import SmallCNN
from jal.models.vgg import VGG16

__all__ = [
    'BACKBONES',
    'ClassifierHead',
    'Features',
    'MultiHeadNet',
    'ResNet18',
    'RotationHead',
    'SmallCNN',
    'VGG16',
    'get_backbone',
]

# Backbone classes by name; each takes `width` and `dtype`.
BACKBONES: dict[str, Callable[..., nn.Module]] = {
    'resnet18': ResNet18,
    'vgg16': VGG16,
    'small_cnn': SmallCNN,
}


def get_backbone(name: str, *, width: int | None = None, dtype: Any = jnp.float32) -> nn.Module:
  """Builds a backbone by name.

  Args:
    name: one of ``'resnet18'``, ``'vgg16'``, ``'small_cnn'``.
    width: channels of the first stage; None for the architecture's default
      (64 for ResNet-18 and VGG-16, 32 for the small CNN).
    dtype: compute dtype, e.g. ``jnp.bfloat16``; parameters stay float32.

  Returns:
    An unbound flax module ``backbone(x, train) -> Features``.

  Raises:
    JalError: the name is unknown or the width is not a positive integer.
  """
  if name not in BACKBONES:
    raise JalError(f'unknown backbone {name!r}; known backbones: {", ".join(sorted(BACKBONES))}')
  if width is None:
    return BACKBONES[name](dtype=dtype)
  if isinstance(width, bool) or not isinstance(width, int) or width < 1:
    raise JalError(f'backbone width must be a positive integer, got {width!r}')
  return BACKBONES[name](width=width, dtype=dtype)
