"""Tests of jal.models.vae, the VAE of VAAL and TA-VAAL (Kim et al. 2021): shapes and sampling with
and without a 'sample' stream, batch statistics in training mode, the rank condition read by the
decoder only (Eq. 4), shape errors raised while tracing, and the sub-pixel transposed convolution
against flax's ConvTranspose."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.errors import JalError
from jal.models import VAE


_RNG = np.random.default_rng(0)
# Keys for the VAE tests: compiling a jitted `init` of the VAE with the default
# threefry keys takes about 7 s on a CPU (one threefry per parameter), with
# 'rbg' keys about 1 s; the values do not matter here.
_key = lambda seed: jax.random.key(seed, impl='rbg')


@pytest.mark.parametrize('image_shape', [(32, 32, 3), (28, 28, 1)])
def test_vae_shapes_and_sampling(image_shape):
  model = VAE(z_dim=3, width=4, image_shape=image_shape)
  x = jnp.asarray(_RNG.normal(size=(2, *image_shape)), jnp.float32)
  variables = jax.jit(lambda k: model.init(k, x, False))(_key(0))

  @jax.jit
  def run(variables, x, key1, key2):
    deterministic = model.apply(variables, x, False)
    decoded_mean = model.apply(variables, deterministic[1], False, method=VAE.decode)
    sampled = [model.apply(variables, x, False, rngs={'sample': k}) for k in (key1, key2, key1)]
    return deterministic, decoded_mean, sampled

  (recon, mu, logvar), decoded_mean, (first, second, again) = run(variables, x, _key(1), _key(2))
  chex.assert_shape(recon, (2, *image_shape))
  chex.assert_shape((mu, logvar), (2, 3))
  chex.assert_type((recon, mu, logvar), jnp.float32)
  # Without a 'sample' stream z = mu: the reconstruction is the decoder of mu.
  chex.assert_trees_all_close(decoded_mean, recon, atol=1e-5)
  # With one, z = mu + exp(logvar / 2) eps is random (per key); mu and logvar are not.
  chex.assert_trees_all_close(first[1:], (mu, logvar), atol=1e-6)
  assert not np.allclose(first[0], second[0], atol=1e-4)
  assert not np.allclose(first[0], recon, atol=1e-4)
  chex.assert_trees_all_close(again, first)


def test_vae_training_mode_updates_batch_statistics_and_the_condition_is_used():
  model = VAE(z_dim=3, width=4, image_shape=(16, 16, 2))
  x = jnp.asarray(_RNG.normal(size=(3, 16, 16, 2)), jnp.float32)
  rank = jnp.array([[0.1], [0.5], [0.9]])
  variables = jax.jit(lambda k: model.init(k, x, False, rank))(_key(0))

  @jax.jit
  def run(variables, x):
    low = model.apply(variables, x, False, jnp.zeros((3, 1)))
    high = model.apply(variables, x, False, jnp.ones((3, 1)))
    return low, high, model.apply(variables, x, True, rank, mutable=['batch_stats'])

  low, high, ((recon, _, _), updates) = run(variables, x)
  chex.assert_trees_all_close(low[1:], high[1:])  # the encoder does not see r
  assert not np.allclose(low[0], high[0], atol=1e-5)  # the decoder does (TA-VAAL Eq. 4)
  chex.assert_shape(recon, (3, 16, 16, 2))
  assert set(updates['batch_stats']) == {'encoder', 'decoder'}
  assert not np.allclose(updates['batch_stats']['encoder']['bn1']['mean'],
                         variables['batch_stats']['encoder']['bn1']['mean'])
  # Shape errors are raised while tracing, before anything runs.
  with pytest.raises(JalError):
    jax.eval_shape(lambda v: model.apply(v, x, False, jnp.ones((2, 1))), variables)
  with pytest.raises(JalError):
    jax.eval_shape(lambda v: model.apply(v, x[:, :8], False, rank), variables)
  with pytest.raises(JalError):
    jax.eval_shape(lambda k: VAE(image_shape=(8, 8, 1)).init(k, jnp.zeros((1, 8, 8, 1)), False),
                   _key(0))


def test_subpixel_transposed_convolution_equals_flax_conv_transpose():
  """`ConvTranspose4x4` is PyTorch's ConvTranspose2d(4, 2, 1): the same
  parameters, outputs and kernel gradients as the flax transposed form."""
  import flax.linen as nn
  from jal.models.vae import ConvTranspose4x4
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
  reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                               use_bias=False)
  variables = reference.init(jax.random.key(1), x)
  chex.assert_trees_all_equal(variables, ConvTranspose4x4(4).init(jax.random.key(1), x))
  loss = lambda module: lambda v: jnp.sum(jnp.sin(module.apply(v, x)))
  chex.assert_trees_all_close(ConvTranspose4x4(4).apply(variables, x),
                              reference.apply(variables, x), atol=1e-5)
  chex.assert_trees_all_close(jax.grad(loss(ConvTranspose4x4(4)))(variables),
                              jax.grad(loss(reference))(variables), atol=1e-4)
  assert ConvTranspose4x4(4).apply(variables, x).shape == (2, 10, 14, 4)
