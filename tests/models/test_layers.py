"""Tests of jal.models.layers: gradient reversal is the identity forward and flips and scales the
gradient, on arrays and pytrees, with bfloat16 leaves and a traced scale inside a composed
function; l2_normalize against NumPy, with a finite gradient at zero."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jal.models import layers


_RNG = np.random.default_rng(0)


# ------------------------------------------------------------------- gradient reversal


def test_gradient_reversal_is_the_identity_forward_and_flips_the_gradient():
  x = jnp.asarray(_RNG.normal(size=(3, 4)), jnp.float32)
  weights = jnp.asarray(_RNG.normal(size=(3, 4)), jnp.float32)
  chex.assert_trees_all_close(layers.gradient_reversal(x, 0.7), x)
  grad = jax.grad(lambda x: jnp.sum(weights * layers.gradient_reversal(x, 0.7)))(x)
  chex.assert_trees_all_close(grad, -0.7 * weights, rtol=1e-6)

  # A pytree; the leaves keep their dtype, and bfloat16 gradients stay bfloat16.
  tree = {'a': x, 'b': (jnp.ones(2, jnp.bfloat16),)}
  chex.assert_trees_all_equal(layers.gradient_reversal(tree, 2.0), tree)

  def loss(tree):
    reversed_tree = layers.gradient_reversal(tree, 2.0)
    return (jnp.sum(reversed_tree['a'] * weights)
            + jnp.sum(reversed_tree['b'][0].astype(jnp.float32) * 3))
  grads = jax.grad(loss)(tree)
  chex.assert_trees_all_close(grads['a'], -2.0 * weights, rtol=1e-6)
  assert grads['b'][0].dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(grads['b'][0], np.float32), -6.0)


def test_gradient_reversal_with_a_traced_scale_inside_a_composed_function():
  x = jnp.asarray(_RNG.normal(size=(5,)), jnp.float32)

  def composed(x, scale):
    # h(x) = sum(sin(R(x^2))): dh/dx = -scale * cos(x^2) * 2x.
    return jnp.sum(jnp.sin(layers.gradient_reversal(x ** 2, scale)))

  grad = jax.jit(jax.grad(composed, argnums=(0, 1)))
  for scale in (0.0, 0.3, 5.0):
    grad_x, grad_scale = grad(x, jnp.float32(scale))
    np.testing.assert_allclose(grad_x, -scale * np.cos(np.asarray(x) ** 2) * 2 * np.asarray(x),
                               rtol=1e-5, atol=1e-6)
    assert float(grad_scale) == 0.0  # the scale is not differentiated
  np.testing.assert_allclose(jax.jit(composed)(x, 1.0), np.sum(np.sin(np.asarray(x) ** 2)),
                             rtol=1e-6)


# ----------------------------------------------------------------------- l2_normalize


def test_l2_normalize_matches_numpy_and_is_finite_at_zero():
  x = _RNG.normal(size=(5, 7)).astype(np.float32) * np.array([[1e-3], [1.0], [3.0], [1e4], [0]],
                                                             np.float32)
  got = np.asarray(jax.jit(layers.l2_normalize)(x))
  norms = np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
  np.testing.assert_allclose(got[:4], x[:4] / norms[:4], rtol=1e-6)
  np.testing.assert_array_equal(got[4], 0.0)  # a zero vector stays zero
  np.testing.assert_allclose(np.linalg.norm(got[:4], axis=1), 1.0, rtol=1e-6)
  grad = jax.grad(lambda v: jnp.sum(layers.l2_normalize(v) * jnp.arange(7.0)))(jnp.zeros(7))
  assert np.isfinite(np.asarray(grad)).all()
  # Along another axis, and bfloat16 in, float32 out.
  cols = np.asarray(layers.l2_normalize(jnp.asarray(x[:4], jnp.bfloat16), axis=0))
  assert cols.dtype == np.float32
  np.testing.assert_allclose(np.linalg.norm(cols, axis=0), 1.0, rtol=1e-2)


def test_dropout_masks_keep_at_their_rate_and_are_independent():
  """The counter-based masks of `dropout_keep_mask`: the keep rate within 4 standard errors,
  and pairs of elements (neighbours in a mask, the same element under two keys, as in two MC
  samples or two examples) kept together at keep^2, as independent draws are."""
  from jal.models.layers import dropout_keep_mask
  keep, shape = 0.7, (64, 32, 32)
  keys = jax.random.split(jax.random.key(3), 8)
  masks = np.asarray(jax.jit(jax.vmap(lambda k: dropout_keep_mask(k, shape, keep)))(keys))
  n = masks.size
  assert abs(masks.mean() - keep) < 4 * np.sqrt(keep * (1 - keep) / n)
  pairs = {
      'neighbours': (masks[..., :-1], masks[..., 1:]),
      'rows apart': (masks[:, :, :-1, :], masks[:, :, 1:, :]),
      'examples': (masks[:, :-1], masks[:, 1:]),
      'two keys': (masks[:-1], masks[1:]),
  }
  for name, (a, b) in pairs.items():
    both = np.mean(a & b)
    se = np.sqrt(keep**2 * (1 - keep**2) / a.size)
    assert abs(both - keep**2) < 5 * se, (name, both)
  assert not np.array_equal(masks[0], masks[1])
  # Every rate, and the extremes.
  for rate in (0.05, 0.5, 0.95):
    m = np.asarray(dropout_keep_mask(jax.random.key(0), (100_000,), rate))
    assert abs(m.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / m.size)
  assert np.asarray(dropout_keep_mask(jax.random.key(0), (10,), 1.0)).all()
