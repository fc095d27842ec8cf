"""Tests of jal.objectives.contrastive, the supervised contrastive loss of SCAL (Krishnan et al.
2021, Eq. 1; Khosla et al. 2020), against a NumPy reference with explicit loops: anchors without a
positive, padding, and finite gradients when no anchor has a positive."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.objectives import contrastive as losses


def _supcon_reference(z, labels, mask, temperature):
  """Eq. 1 of Krishnan et al. (2021) (Khosla et al. 2020, Eq. 2) by loops, averaged over anchors with a positive."""
  z = np.asarray(z, np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  real = [i for i in range(len(z)) if mask[i] > 0]
  terms = []
  for i in real:
    others = [a for a in real if a != i]
    positives = [p for p in others if labels[p] == labels[i]]
    if not positives:
      continue
    denominator = sum(np.exp(z[i] @ z[a] / temperature) for a in others)
    terms.append(-np.mean([np.log(np.exp(z[i] @ z[p] / temperature) / denominator)
                           for p in positives]))
  return np.mean(terms) if terms else 0.0


@pytest.mark.parametrize('temperature', [0.07, 0.5])
def test_supervised_contrastive_loss_matches_eq_1(temperature):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(8, 5)).astype(np.float32)
  # Class 3 has a single member (no positive: not an anchor, still a negative);
  # the last row is padding.
  labels = np.array([0, 0, 1, 1, 1, 2, 3, 0], np.int32)
  mask = np.array([1, 1, 1, 1, 1, 0, 1, 0], np.float32)
  # Class 2's only member is padding too.
  got = losses.supervised_contrastive_loss(z, labels, mask, temperature)
  chex.assert_shape(got, ())
  np.testing.assert_allclose(got, _supcon_reference(z, labels, mask, temperature), rtol=1e-5)
  # The padding row and the lone member's own positives do not matter.
  z2 = z.copy()
  z2[7] = rng.normal(size=5)
  np.testing.assert_allclose(losses.supervised_contrastive_loss(z2, labels, mask, temperature),
                             got, rtol=1e-6)


def test_supervised_contrastive_loss_with_no_positive_is_zero_with_finite_gradients():
  z = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float32)
  labels = jnp.array([0, 1, 2, 3])
  for mask in (jnp.ones(4), jnp.array([1.0, 0, 0, 0])):
    loss, grad = jax.jit(jax.value_and_grad(losses.supervised_contrastive_loss))(z, labels, mask)
    assert loss == 0.0 and np.isfinite(np.asarray(grad)).all()
  # Two views of each image: every anchor has exactly one positive.
  two_views = jnp.concatenate([z, z + 0.1])
  loss = losses.supervised_contrastive_loss(two_views, jnp.tile(labels, 2), jnp.ones(8))
  np.testing.assert_allclose(loss, _supcon_reference(two_views, np.tile(labels, 2), np.ones(8),
                                                     0.07), rtol=1e-5)


def _nt_xent_reference(z, mask, temperature):
  """SimCLR's Eq. 1 by loops: l(i, j) = -log(exp(s_ij / T) / sum_{k != i} exp(s_ik / T)), s the
  cosine similarity, j = i's other view (rows i and B + i), averaged over the real anchors."""
  z = np.asarray(z, np.float64)
  n = len(z)
  half = n // 2
  sim = (z @ z.T) / np.outer(np.linalg.norm(z, axis=1), np.linalg.norm(z, axis=1))
  terms = []
  for i in range(n):
    if mask[i] == 0:
      continue
    j = (i + half) % n
    denominator = sum(np.exp(sim[i, k] / temperature) for k in range(n) if k != i and mask[k])
    terms.append(-np.log(np.exp(sim[i, j] / temperature) / denominator))
  return np.mean(terms)


def test_nt_xent_is_simclr_eq_1():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(10, 6)).astype(np.float32)  # 5 images, two views each
  mask = np.array([1, 1, 1, 1, 0] * 2, np.float32)  # the last image is padding
  loss = jax.jit(losses.nt_xent_loss)  # one compilation: the temperature is traced
  for temperature in (0.5, 0.1):
    got = loss(jnp.asarray(z), jnp.asarray(mask), temperature)
    np.testing.assert_allclose(got, _nt_xent_reference(z, mask, temperature), rtol=1e-5)
