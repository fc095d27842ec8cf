"""Tests of jal.models.vgg: VGG16 on MNIST-sized (28x28) input, whose blocks shrink to 1x1 and
whose pooled features keep their width."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from helpers import TINY_WIDTH
from jal.models import VGG16


def test_vgg_on_mnist_sized_input():
  backbone = VGG16(width=TINY_WIDTH)
  out = jax.eval_shape(
      lambda x: backbone.init_with_output(jax.random.key(0), x, train=False)[0],
      jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
  assert [b.shape[1:3] for b in out.blocks] == [(14, 14), (7, 7), (3, 3), (1, 1), (1, 1)]
  assert out.pooled.shape == (2, 8 * TINY_WIDTH)
