"""Tests of jal.models.dbal_cnn, the MNIST network of Gal, Islam & Ghahramani 2017 (Sec. 5.1):
its layer shapes and parameter count against the paper's architecture counted by hand, its
forward pass against a NumPy one written from the paper, and its own dropout: after the max-pool
(0.25) and after the dense layer (0.5) only, on with a dropout stream, off without."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.errors import JalError
from jal.models import BACKBONES, ClassifierHead, DBALCNN, MultiHeadNet, get_backbone


def _num_params(tree) -> int:
  return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(tree))


def test_layer_shapes_and_parameter_count_on_mnist_are_the_papers():
  net = MultiHeadNet(get_backbone('dbal_cnn'), {'classifier': ClassifierHead(10)})
  variables = jax.eval_shape(lambda x: net.init(jax.random.key(0), x, train=False),
                             jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
  shapes = jax.tree.map(lambda leaf: leaf.shape, variables['params'])
  # 32 kernels of 4x4 twice, valid padding: 28 -> 25 -> 22, pooled 2x2 -> 11; dense 128.
  assert shapes == {
      'backbone': {'conv1': {'kernel': (4, 4, 1, 32), 'bias': (32,)},
                   'conv2': {'kernel': (4, 4, 32, 32), 'bias': (32,)},
                   'dense': {'kernel': (11 * 11 * 32, 128), 'bias': (128,)}},
      'heads_classifier': {'fc': {'kernel': (128, 10), 'bias': (10,)}}}
  by_hand = (4 * 4 * 1 * 32 + 32) + (4 * 4 * 32 * 32 + 32) + (3872 * 128 + 128) + (128 * 10 + 10)
  assert _num_params(variables['params']) == by_hand == 513_994
  assert set(variables) == {'params'}  # no batch norm
  out = jax.eval_shape(lambda v, x: net.apply(v, x, train=False), variables,
                       jax.ShapeDtypeStruct((2, 28, 28, 1), jnp.float32))
  chex.assert_shape((out['features'], out['classifier']), ((2, 128), (2, 10)))
  assert BACKBONES['dbal_cnn'].own_dropout and not BACKBONES['small_cnn'].own_dropout


def _reference_forward(params, x):
  """The paper's conv-relu-conv-relu-maxpool-dense-relu in NumPy (dropout off)."""
  def conv_valid(x, kernel, bias):
    k = kernel.shape[0]
    h, w = x.shape[1] - k + 1, x.shape[2] - k + 1
    out = np.zeros((x.shape[0], h, w, kernel.shape[-1]))
    for i in range(h):
      for j in range(w):
        out[:, i, j] = np.einsum('bijc,ijcd->bd', x[:, i:i + k, j:j + k], kernel)
    return out + bias
  relu = lambda z: np.maximum(z, 0.0)
  y = relu(conv_valid(x, params['conv1']['kernel'], params['conv1']['bias']))
  y = relu(conv_valid(y, params['conv2']['kernel'], params['conv2']['bias']))
  b, h, w, c = y.shape
  y = y[:, :h // 2 * 2, :w // 2 * 2].reshape(b, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))
  return relu(y.reshape(b, -1) @ params['dense']['kernel'] + params['dense']['bias'])


@pytest.fixture(scope='module')
def tiny():
  """A width-3, 5-unit DBAL CNN on 10x10 images (10 -> 7 -> 4 -> pooled 2), and its apply."""
  net = DBALCNN(width=3, hidden=5)
  x = jax.random.normal(jax.random.key(0), (4, 10, 10, 2))
  variables = net.init(jax.random.key(1), x, train=False)
  apply = jax.jit(lambda x, key: net.apply(variables, x, train=True, rngs={'dropout': key}))
  return net, variables, x, apply


def test_forward_pass_matches_numpy_reference(tiny):
  net, variables, x, _ = tiny
  features = jax.jit(lambda x: net.apply(variables, x, train=False))(x)
  params = jax.tree.map(np.asarray, variables['params'])
  np.testing.assert_allclose(features.pooled, _reference_forward(params, np.asarray(x)),
                             rtol=1e-5, atol=1e-5)
  chex.assert_shape(features.blocks, ((4, 7, 7, 3), (4, 2, 2, 3)))


def test_own_dropout_is_after_the_pool_and_the_dense_layer_only(tiny):
  net, variables, x, apply = tiny
  plain = jax.jit(lambda x: net.apply(variables, x, train=False))(x)
  one, two = apply(x, jax.random.key(2)), apply(x, jax.random.key(3))
  # No dropout on the convolutions: the first map is the deterministic one.
  np.testing.assert_array_equal(one.blocks[0], plain.blocks[0])
  # After the pool: each element dropped or scaled by 1 / (1 - 0.25).
  dropped = np.asarray(one.blocks[1])
  kept = dropped != 0
  assert 0 < kept.mean() < 1
  np.testing.assert_allclose(dropped[kept], np.asarray(plain.blocks[1])[kept] / 0.75, rtol=1e-6)
  # Two keys, two masks; the same key, the same mask.
  assert not np.allclose(one.pooled, two.pooled)
  np.testing.assert_array_equal(apply(x, jax.random.key(2)).pooled, one.pooled)
  # After the dense layer (the pool's dropout off): dropped or scaled by 1 / (1 - 0.5).
  dense_only = DBALCNN(width=3, hidden=5, conv_dropout=0.0)
  sampled = jax.jit(lambda x: dense_only.apply(variables, x, train=True,
                                               rngs={'dropout': jax.random.key(4)}))(x).pooled
  sampled, reference = np.asarray(sampled), np.asarray(plain.pooled)
  kept = sampled != 0
  np.testing.assert_allclose(sampled[kept], reference[kept] / 0.5, rtol=1e-6)
  assert 0 < (kept & (reference != 0)).sum() < (reference != 0).sum()


def test_backbone_wide_dropout_rate_adds_dropout_after_each_convolution(tiny):
  _, variables, x, _ = tiny
  net = DBALCNN(width=3, hidden=5, dropout_rate=0.5)
  plain = jax.jit(lambda x: net.apply(variables, x, train=False))(x)
  sampled = jax.jit(lambda x: net.apply(variables, x, train=True,
                                        rngs={'dropout': jax.random.key(5)}))(x)
  first, reference = np.asarray(sampled.blocks[0]), np.asarray(plain.blocks[0])
  kept = first != 0
  assert 0 < (kept & (reference != 0)).sum() < (reference != 0).sum()
  np.testing.assert_allclose(first[kept], reference[kept] / 0.5, rtol=1e-6)


def test_too_small_images_are_refused_in_one_line():
  with pytest.raises(JalError, match='at least 7x7.*got 6x6') as info:
    DBALCNN().init(jax.random.key(0), jnp.zeros((1, 6, 6, 1)), train=False)
  assert '\n' not in str(info.value)
