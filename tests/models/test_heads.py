"""Tests of jal.models.heads: MultiHeadNet's parameter names, its refusal of a head named
'features', hashing and jitting; the cosine classifier of MAL against Eq. 1 of Ebrahimi et al.
(2020), and its appendix hidden layer's parameter count; the loss prediction module of Learning
Loss (shapes, the gradient stop into the backbone)."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (NUM_CLASSES, TINY_WIDTH, init_variables,
                     loss_prediction_net as _loss_prediction_net, normal_images as _images,
                     tiny_net as _net)
from jal.errors import JalError
from jal.models import (ClassifierHead, CosineClassifier, Features, MultiHeadNet, ResNet18,
                        RotationHead, SmallCNN)


_RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------ MultiHeadNet


def test_multi_head_param_names():
  net = MultiHeadNet(
      backbone=ResNet18(width=TINY_WIDTH),
      heads={'classifier': ClassifierHead(NUM_CLASSES), 'rotation': RotationHead()})
  variables = jax.eval_shape(
      lambda x: net.init(jax.random.key(0), x, train=False),
      jax.ShapeDtypeStruct((1, 8, 8, 3), jnp.float32))
  assert set(variables['params']) == {'backbone', 'heads_classifier', 'heads_rotation'}
  assert set(variables['batch_stats']) == {'backbone'}
  assert variables['params']['heads_classifier']['fc']['kernel'].shape == (8 * TINY_WIDTH, NUM_CLASSES)
  assert variables['params']['heads_rotation']['fc']['kernel'].shape == (8 * TINY_WIDTH, 4)


def test_head_named_features_is_rejected():
  with pytest.raises(JalError, match='features'):
    MultiHeadNet(backbone=SmallCNN(width=TINY_WIDTH), heads={'features': RotationHead()})


def test_multi_head_net_is_hashable_and_jittable():
  net = _net('small_cnn')
  assert hash(net) == hash(_net('small_cnn'))
  assert net == _net('small_cnn')
  x = _images((2, 8, 8, 1))
  variables = jax.jit(net.init, static_argnames='train')(jax.random.key(0), x, train=False)
  apply = jax.jit(net.apply, static_argnames=('train', 'mutable'))
  out, _ = apply(variables, x, train=True, mutable=('batch_stats',))
  chex.assert_shape(out['classifier'], (2, NUM_CLASSES))


# ------------------------------------------------------------------- cosine classifier


def _reference_cosine_logits(features, kernel, temperature, normalize_weights):
  """Eq. 1 of Ebrahimi et al. (2020): logit_k = w_k . f / (||f|| T)."""
  batch, dim = features.shape
  logits = np.zeros((batch, kernel.shape[1]))
  for b in range(batch):
    norm_f = math.sqrt(sum(features[b, d] ** 2 for d in range(dim)))
    for k in range(kernel.shape[1]):
      w = kernel[:, k] / (np.sqrt(np.sum(kernel[:, k] ** 2)) if normalize_weights else 1.0)
      logits[b, k] = sum(w[d] * features[b, d] for d in range(dim)) / (norm_f * temperature)
  return logits


@pytest.mark.parametrize('normalize_weights', [False, True])
def test_cosine_classifier_matches_eq1_and_normalises(normalize_weights):
  features = jnp.asarray(_RNG.normal(size=(4, 6)), jnp.float32)
  model = CosineClassifier(num_classes=5, temperature=0.1, normalize_weights=normalize_weights)
  variables = init_variables(model, features)
  apply = jax.jit(model.apply)
  logits = apply(variables, features)
  chex.assert_shape(logits, (4, 5))
  chex.assert_type(logits, jnp.float32)
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  chex.assert_shape(kernel, (6, 5))
  np.testing.assert_allclose(
      logits, _reference_cosine_logits(np.asarray(features, np.float64), kernel, 0.1,
                                       normalize_weights), rtol=1e-5, atol=1e-5)
  # Scaling the features by any positive constant leaves the logits unchanged.
  for scale in (1e-3, 0.5, 7.0, 1e3):
    np.testing.assert_allclose(apply(variables, features * scale), logits, rtol=1e-5, atol=1e-5)
  # Logits scale as 1 / T.
  for temperature in (1.0, 0.05):
    other = CosineClassifier(num_classes=5, temperature=temperature,
                             normalize_weights=normalize_weights)
    np.testing.assert_allclose(other.apply(variables, features), logits * 0.1 / temperature,
                               rtol=1e-5, atol=1e-5)
  if normalize_weights:  # true cosines: |logit| <= 1 / T
    assert np.abs(logits).max() <= 1 / 0.1 + 1e-4
  # Features input, as a MultiHeadNet head; a zero feature vector gives finite logits
  # and gradients.
  chex.assert_trees_all_close(model.apply(variables, Features(pooled=features, blocks=())), logits)
  zero = jnp.zeros((1, 6))
  assert np.isfinite(model.apply(variables, zero)).all()
  assert np.isfinite(jax.grad(lambda f: jnp.sum(model.apply(variables, f)))(zero)).all()


def test_cosine_classifier_with_the_appendix_hidden_layer_has_its_parameter_count():
  # MAL, App. B: C has 156.93K parameters with ResNet-18 (512 features) on CIFAR-100.
  variables = jax.eval_shape(CosineClassifier(100, hidden=256).init, jax.random.key(0),
                             np.zeros((1, 512), np.float32))
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables))
  assert count == 156_928


# -------------------------------------------------------------- loss prediction module


def test_loss_prediction_module_shapes_and_gradient_stop():
  model = _loss_prediction_net()
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  variables = init_variables(model, x, seed=1, train=False)
  head = variables['params']['heads_loss_prediction']
  assert sorted(head) == ['block1_fc', 'block2_fc', 'block3_fc', 'fc']
  chex.assert_shape(head['block3_fc']['kernel'], (16, 8))  # GAP of the 16-channel block
  chex.assert_shape(head['fc']['kernel'], (24, 1))  # three blocks x 8 units

  def prediction_sum(params, stop):
    out = model.apply({**variables, 'params': params}, x, train=False,
                      head_args={'loss_prediction': {'stop_gradient': stop}})
    chex.assert_shape(out['loss_prediction'], (4,))
    return jnp.sum(out['loss_prediction'])

  grad = jax.jit(jax.grad(prediction_sum))  # stop is traced: one compilation
  for stop, backbone_moves in ((False, True), (True, False)):
    grads = grad(variables['params'], jnp.bool_(stop))
    norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads['backbone']))
    assert (norm > 0) == backbone_moves
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads['heads_loss_prediction']))
