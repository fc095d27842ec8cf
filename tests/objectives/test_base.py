"""Tests of jal.objectives.base.masked_mean, the mean over a batch's real examples: masked entries
(inf and NaN padding too) are ignored and get no gradient, the mask weighs, and a fully masked
batch gives 0."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jal.objectives import masked_mean


def test_masked_mean_ignores_masked_entries():
  fn = jax.jit(masked_mean)
  values = jnp.array([1.0, 2.0, 100.0, 3.0, -50.0])
  mask = jnp.array([1.0, 1.0, 0.0, 1.0, 0.0])
  chex.assert_trees_all_close(fn(values, mask), jnp.float32(2.0))
  chex.assert_trees_all_close(fn(values, jnp.ones(5)), jnp.float32(56.0 / 5))
  # A fully masked batch gives 0, not NaN.
  chex.assert_trees_all_close(fn(values, jnp.zeros(5)), jnp.float32(0.0))


def test_masked_mean_drops_padding_that_holds_inf_or_nan_and_weighs_by_the_mask():
  values = jnp.array([1.0, jnp.inf, 3.0, jnp.nan])
  mask = jnp.array([1.0, 0.0, 1.0, 0.0])
  chex.assert_trees_all_close(jax.jit(masked_mean)(values, mask), jnp.float32(2.0))
  grad = jax.jit(jax.grad(lambda v: masked_mean(v, mask)))(values)
  assert np.isfinite(np.asarray(grad)).all()
  # Fractional weights: sum(m v) / sum(m).
  chex.assert_trees_all_close(masked_mean(jnp.array([1.0, 4.0]), jnp.array([0.25, 0.75])),
                              jnp.float32(3.25))


def test_masked_mean_gradient_is_zero_on_masked_entries():
  values = jnp.array([1.0, 2.0, 3.0, 4.0])
  mask = jnp.array([1.0, 0.0, 1.0, 0.0])
  grad = jax.jit(jax.grad(lambda v: masked_mean(v ** 2, mask)))(values)
  chex.assert_trees_all_close(grad, jnp.array([1.0, 0.0, 3.0, 0.0]))
