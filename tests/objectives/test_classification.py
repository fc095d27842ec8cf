"""Tests of jal.objectives.classification: the cross-entropy loss draws dropout from its key (the
same key, the same loss); the ensemble loss trains each member on its own cross-entropy; the linear
probe of SCAL's classifier stage trains only the classifier, on frozen features."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from helpers import dropout_net as _dropout_net, init_variables
from jal import rng
from jal.models import ClassifierHead, Ensemble, MultiHeadNet, ProjectionHead, get_backbone
from jal.objectives import Batch
from jal.objectives.classification import cross_entropy_loss, ensemble_loss, linear_probe_loss


def test_training_uses_dropout_but_the_task_loss_is_deterministic_per_key():
  model = _dropout_net()
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  variables = init_variables(model, x, seed=1, train=False)
  loss = jax.jit(lambda k: cross_entropy_loss(
      model.apply, variables, Batch(x, jnp.zeros(6, jnp.int32), jnp.ones(6)), k, 0.0)[0])
  assert float(loss(jax.random.key(3))) == float(loss(jax.random.key(3)))
  assert float(loss(jax.random.key(3))) != float(loss(jax.random.key(4)))


def test_ensemble_loss_trains_each_member_on_its_own_cross_entropy():
  member = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  model = Ensemble(member, 2)
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  labels = jnp.array([0, 1, 2, 0])
  variables = init_variables(model, x, seed=1, train=False)

  def loss_of(params):
    return ensemble_loss(model.apply, {**variables, 'params': params},
                         Batch(x, labels, jnp.ones(4)), jax.random.key(0), 0.0)[0]

  grads = jax.jit(jax.grad(loss_of))(variables['params'])
  # The gradient of member 0 is the gradient of member 0's loss alone.
  own = jax.tree.map(lambda v: v[0], variables)

  def member_loss(params):
    import optax
    out, _ = member.apply({**own, 'params': params}, x, train=True, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(out['classifier'], labels).mean()

  chex.assert_trees_all_close(jax.tree.map(lambda g: g[0], grads),
                              jax.jit(jax.grad(member_loss))(own['params']), atol=1e-5)


def test_linear_stage_trains_only_the_classifier_on_frozen_features():
  model = MultiHeadNet(get_backbone('small_cnn', width=4),
                       {'classifier': ClassifierHead(3), 'projection': ProjectionHead(8)})
  x = jnp.asarray(np.random.default_rng(5).normal(size=(4, 8, 8, 1)), jnp.float32)
  variables = jax.jit(lambda key: model.init({'params': rng.init_key(key)}, x, train=False))(
      jax.random.key(0))
  labels, mask = jnp.array([0, 1, 2, 0]), jnp.ones(4)

  def loss(params):
    return linear_probe_loss(model.apply, {**variables, 'params': params},
                             Batch(x, labels, mask), None, 0.0)

  (value, (batch_stats, metrics)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      variables['params'])
  assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads['backbone']))
  assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads['heads_projection']))
  assert np.asarray(grads['heads_classifier']['fc']['kernel']).any()
  chex.assert_trees_all_equal(batch_stats, variables['batch_stats'])
  assert metrics['loss'] == value
  out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
  np.testing.assert_allclose(np.linalg.norm(out['projection'], axis=1), 1.0, rtol=1e-5)
