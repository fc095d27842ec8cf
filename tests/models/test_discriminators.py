"""Tests of jal.models.discriminators: the latent discriminator of VAAL and TA-VAAL (depth,
parameter count, the rank condition of TA-VAAL's Eq. 3; Kim et al. 2021) and MAL's MLP
discriminator (parameter count, Features input, stop-gradient; Ebrahimi et al. 2020)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import init_variables
from jal.errors import JalError
from jal.models import Features, LatentDiscriminator, MLPDiscriminator


_RNG = np.random.default_rng(0)


def _param_count(variables):
  return sum(leaf.size for leaf in jax.tree.leaves(variables['params']))


def test_latent_discriminator_shapes_depth_and_condition():
  z = jnp.asarray(_RNG.normal(size=(4, 3)), jnp.float32)
  plain = LatentDiscriminator(width=8)
  variables = init_variables(plain, z)
  logits = jax.jit(plain.apply)(variables, z)
  chex.assert_shape(logits, (4,))
  chex.assert_type(logits, jnp.float32)
  # Linear(3, 8)-ReLU-Linear(8, 8)-ReLU-Linear(8, 1); each extra hidden layer adds 8 x 8 + 8.
  assert _param_count(variables) == (3 * 8 + 8) + (8 * 8 + 8) + (8 + 1)
  deep = LatentDiscriminator(width=8, num_hidden=4)
  assert _param_count(init_variables(deep, z)) == _param_count(variables) + 2 * (8 * 8 + 8)

  conditioned = LatentDiscriminator(width=8)
  variables = init_variables(conditioned, z, jnp.zeros((4, 1)))
  apply = jax.jit(conditioned.apply)
  low, high = apply(variables, z, jnp.zeros((4, 1))), apply(variables, z, jnp.ones((4, 1)))
  chex.assert_shape(low, (4,))
  assert not np.allclose(low, high, atol=1e-6)  # D(r, z) reads r (TA-VAAL Eq. 3)
  with pytest.raises(JalError):
    apply(variables, z, jnp.ones((4,)))


def test_mal_discriminator_shapes_and_stop_gradient():
  features = jnp.asarray(_RNG.normal(size=(4, 6)), jnp.float32)
  model = MLPDiscriminator(width=8)
  variables = init_variables(model, features)
  assert _param_count(variables) == (6 * 8 + 8) + (8 * 8 + 8) + (8 + 1)  # three layers
  logits = jax.jit(model.apply)(variables, features)
  chex.assert_shape(logits, (4,))
  # A backbone's Features work as the input (a MultiHeadNet head).
  chex.assert_trees_all_close(model.apply(variables, Features(pooled=features, blocks=())), logits)
  grad = lambda stop: jax.grad(lambda f: jnp.sum(model.apply(variables, f, stop_gradient=stop)))(
      features)
  assert np.abs(grad(False)).sum() > 0
  np.testing.assert_array_equal(grad(True), 0.0)
