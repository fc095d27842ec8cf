"""Tests of jal.models (the package) over every backbone, as get_backbone builds it inside a
MultiHeadNet: output shapes in training and evaluation, the blocks and pooled features, parameter
counts against PyTorch's, batch norm in training and evaluation, bfloat16 compute with float32
parameters; get_backbone's lookup and errors, and the compute dtypes."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (NUM_CLASSES, TINY_WIDTH, init_variables, normal_images as _images,
                     tiny_net as _net)
from jal.errors import JalError
from jal.models import ClassifierHead, Features, MultiHeadNet, ResNet18, SmallCNN, VGG16, get_backbone


NAMES = ('resnet18', 'vgg16', 'small_cnn')


def _num_params(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


# Width of the pooled features relative to `width`, and the default width.
_POOLED_MULTIPLIER = {'resnet18': 8, 'vgg16': 8, 'small_cnn': 4}
_NUM_BLOCKS = {'resnet18': 4, 'vgg16': 5, 'small_cnn': 3}


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('shape', [(2, 32, 32, 3), (2, 8, 8, 1)])
def test_output_shapes_train_and_eval(name, shape):
  net = _net(name)
  x = _images(shape)
  variables = init_variables(net, x, seed=1, train=False)
  assert set(variables) == {'params', 'batch_stats'}
  dim = _POOLED_MULTIPLIER[name] * TINY_WIDTH
  train_out, updates = net.apply(variables, x, train=True, mutable=['batch_stats'])
  eval_out = net.apply(variables, x, train=False)
  for out in (train_out, eval_out):
    assert set(out) == {'classifier', 'rotation', 'features'}
    chex.assert_shape(out['classifier'], (2, NUM_CLASSES))
    chex.assert_shape(out['rotation'], (2, 4))
    chex.assert_shape(out['features'], (2, dim))
    chex.assert_type([out['classifier'], out['rotation'], out['features']], jnp.float32)
    chex.assert_tree_all_finite(out)
  assert set(updates) == {'batch_stats'}


@pytest.mark.parametrize('name', NAMES)
def test_blocks(name):
  backbone = get_backbone(name, width=TINY_WIDTH)
  x = _images((2, 32, 32, 3))
  variables = init_variables(backbone, x, train=False)
  features = backbone.apply(variables, x, train=False)
  assert isinstance(features, Features)
  assert len(features.blocks) == _NUM_BLOCKS[name]
  expected = {
      'resnet18': [(2, 32, 32, 4), (2, 16, 16, 8), (2, 8, 8, 16), (2, 4, 4, 32)],
      'vgg16': [(2, 16, 16, 4), (2, 8, 8, 8), (2, 4, 4, 16), (2, 2, 2, 32), (2, 1, 1, 32)],
      'small_cnn': [(2, 16, 16, 4), (2, 8, 8, 8), (2, 8, 8, 16)],
  }[name]
  chex.assert_shape(list(features.blocks), expected)
  # The pooled features are the global average of the last block.
  np.testing.assert_allclose(
      features.pooled, jnp.mean(features.blocks[-1], axis=(1, 2)), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize('name, expected', [
    # kuangliu/pytorch-cifar ResNet18(num_classes=10).
    ('resnet18', 11_173_962),
    # kuangliu/pytorch-cifar VGG('VGG16'): convs with bias, BN, Linear(512, 10).
    ('vgg16', 14_728_266),
])
def test_parameter_counts_match_pytorch(name, expected):
  net = MultiHeadNet(backbone=get_backbone(name), heads={'classifier': ClassifierHead(NUM_CLASSES)})
  variables = jax.eval_shape(
      lambda x: net.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1, 32, 32, 3), jnp.float32))
  assert _num_params(variables['params']) == expected


@pytest.mark.parametrize('name', NAMES)
def test_batch_norm_train_updates_stats_and_eval_is_per_example(name):
  net = _net(name)
  x = _images((3, 8, 8, 3), seed=2)
  variables = init_variables(net, x, train=False)
  _, updates = net.apply(variables, x, train=True, mutable=['batch_stats'])
  before = jax.tree_util.tree_leaves(variables['batch_stats'])
  after = jax.tree_util.tree_leaves(updates['batch_stats'])
  assert len(before) == len(after) > 0
  assert all(not np.allclose(b, a) for b, a in zip(before, after))

  # Eval mode uses the running averages: example 0's output does not depend
  # on the rest of the batch.
  variables = {'params': variables['params'], 'batch_stats': updates['batch_stats']}
  other = _images((3, 8, 8, 3), seed=3).at[0].set(x[0])
  out_a = net.apply(variables, x, train=False)
  out_b = net.apply(variables, other, train=False)
  chex.assert_trees_all_close(
      jax.tree_util.tree_map(lambda a: a[0], out_a),
      jax.tree_util.tree_map(lambda a: a[0], out_b), rtol=1e-5, atol=1e-5)
  # Train mode uses the batch statistics, so there it does depend on them.
  train_a, _ = net.apply(variables, x, train=True, mutable=['batch_stats'])
  train_b, _ = net.apply(variables, other, train=True, mutable=['batch_stats'])
  assert not np.allclose(train_a['features'][0], train_b['features'][0])


@pytest.mark.parametrize('name', NAMES)
def test_bfloat16_compute_keeps_float32_params_and_features(name):
  net = _net(name, dtype=jnp.bfloat16)
  x = _images((2, 8, 8, 3))
  variables = init_variables(net, x, train=False)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(variables)} == {jnp.dtype(jnp.float32)}
  out, updates = net.apply(variables, x, train=True, mutable=['batch_stats'])
  chex.assert_type([out['features'], out['classifier'], out['rotation']], jnp.float32)
  chex.assert_tree_all_finite(out)
  assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(updates)} == {jnp.dtype(jnp.float32)}
  backbone = get_backbone(name, width=TINY_WIDTH, dtype=jnp.bfloat16)
  features = backbone.apply({k: v['backbone'] for k, v in variables.items()}, x, train=False)
  chex.assert_type(features.pooled, jnp.float32)
  chex.assert_type(list(features.blocks), [jnp.bfloat16] * len(features.blocks))


def test_get_backbone():
  assert isinstance(get_backbone('resnet18'), ResNet18)
  assert get_backbone('resnet18').width == 64
  assert get_backbone('vgg16').width == 64
  assert get_backbone('small_cnn').width == 32
  assert isinstance(get_backbone('small_cnn', width=8), SmallCNN)
  assert get_backbone('vgg16', width=8, dtype=jnp.bfloat16).dtype == jnp.bfloat16
  assert isinstance(get_backbone('vgg16'), VGG16)


def test_get_backbone_unknown_name():
  with pytest.raises(JalError, match='resnet18.*small_cnn.*vgg16'):
    get_backbone('resnet50')


@pytest.mark.parametrize('width', [0, -1, 2.5])
def test_get_backbone_bad_width(width):
  with pytest.raises(JalError):
    get_backbone('small_cnn', width=width)


def test_compute_dtype_names():
  from jal.models import compute_dtype
  assert compute_dtype('bfloat16') is jnp.bfloat16 and compute_dtype('float32') is jnp.float32
  assert get_backbone('small_cnn', width=4, dtype='bfloat16').dtype == jnp.bfloat16
  with pytest.raises(JalError, match="unknown compute dtype 'float16'; use one of"):
    get_backbone('small_cnn', dtype='float16')
