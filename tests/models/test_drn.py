"""DRN-D-22 (jal.models.drn): the parameter count of the segmentation network against the
authors' code, output shapes and output stride, and a train-mode step on a tiny image.

`REFERENCE_PARAMETERS`: the trainable parameters of the authors' ``DRNSeg('drn_d_22', K)``
(github.com/fyu/drn at commit d75db2ee7070426db7a9264ee61cf489f8cf178c: ``drn.py``'s
``drn_d_22`` without its average pool and fc, plus ``segment.py``'s 1x1 ``seg`` conv with
bias), without DRNSeg's frozen ConvTranspose2d ``up`` (``K * 16 * 16`` weights,
``requires_grad=False``), which jal replaces with bilinear resizing. Printed with torch
2.13.0+cpu by ``experiments/segmentation_param_counts.py --reference --drn PATH/drn.py``
(``PATH`` a checkout of fyu/drn at that commit). The backbone alone has 15,880,752.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import normal_images
from jal.models.drn import DRND22
from jal.models.heads import MultiHeadNet
from jal.models.segmentation_nets import PixelClassifierHead

# fyu/drn's DRNSeg('drn_d_22', K) without its frozen `up` (see the module docstring).
REFERENCE_PARAMETERS = {11: 15_886_395, 19: 15_890_499}


def _segmentation_net(num_classes, **backbone_args):
  return MultiHeadNet(DRND22(**backbone_args), {'classifier': PixelClassifierHead(num_classes)})


def _numpy_initialised(net, x):
  """``net``'s variables drawn with NumPy (He-normal kernels, BN scale 1, zero biases).

  Drawing DRN's 16 million weights with ``net.init`` takes XLA:CPU over ten seconds at the
  tests' ``-O0`` (`conftest.TEST_XLA_FLAGS`); NumPy takes a fraction of one.
  """
  shapes = jax.eval_shape(lambda: net.init(jax.random.key(0), x, False))
  generator = np.random.default_rng(0)

  def draw(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      std = np.sqrt(2.0 / np.prod(leaf.shape[:-1]))
      return jnp.asarray(std * generator.standard_normal(leaf.shape, np.float32))
    return jnp.full(leaf.shape, 1.0 if name in ('scale', 'var') else 0.0, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.mark.parametrize('num_classes', sorted(REFERENCE_PARAMETERS))
def test_the_segmentation_network_has_the_reference_parameter_count(num_classes):
  net = _segmentation_net(num_classes)
  shape = (2, 64, 96, 3)
  variables = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros(shape), False))
  assert sum(x.size for x in jax.tree.leaves(variables['params'])) == (
      REFERENCE_PARAMETERS[num_classes])
  out = jax.eval_shape(lambda v: net.apply(v, jnp.zeros(shape), False), variables)
  chex.assert_shape(out['classifier'], (2, 64, 96, num_classes))
  assert out['classifier'].dtype == jnp.float32
  chex.assert_shape(out['features'], (2, 512))


def test_the_blocks_are_levels_3_to_8_at_output_stride_8():
  # An odd size: strides round up as PyTorch's padded convs do.
  features = jax.eval_shape(
      lambda: DRND22(dtype=jnp.bfloat16).init_with_output(
          jax.random.key(0), jnp.zeros((2, 37, 50, 3)), False)[0])
  assert [b.shape for b in features.blocks] == [
      (2, 10, 13, 64), (2, 5, 7, 128), (2, 5, 7, 256), (2, 5, 7, 512), (2, 5, 7, 512),
      (2, 5, 7, 512)]
  assert all(b.dtype == jnp.bfloat16 for b in features.blocks)
  assert features.pooled.shape == (2, 512) and features.pooled.dtype == jnp.float32
  assert features.image_size == (37, 50)


def test_a_train_mode_apply_runs_and_is_finite():
  net = _segmentation_net(5, dropout_rate=0.1)
  x = normal_images((1, 32, 48, 3))
  variables = _numpy_initialised(net, x)
  apply = jax.jit(lambda v, x, key: net.apply(v, x, True, mutable=['batch_stats'],
                                              rngs={'dropout': key}))
  out, updates = apply(variables, x, jax.random.key(2))
  chex.assert_shape(out['classifier'], (1, 32, 48, 5))
  assert out['classifier'].dtype == jnp.float32
  chex.assert_tree_all_finite((out, updates))
  assert jax.tree.structure(updates['batch_stats']) == jax.tree.structure(
      variables['batch_stats'])
  # The running averages moved towards the batch's statistics.
  stem = updates['batch_stats']['backbone']['layer0_bn']
  assert np.any(np.asarray(stem['mean']) != 0) and np.any(np.asarray(stem['var']) != 1)
