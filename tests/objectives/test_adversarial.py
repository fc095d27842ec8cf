"""Tests of jal.objectives.adversarial, the losses of VAAL, TA-VAAL (Kim et al. 2021) and MAL
(Ebrahimi et al. 2020): the VAE's reconstruction and KL terms, the discriminator's and the VAE's
adversarial losses, the discriminator's accuracy and means, the minimax entropy and the pool
diagnostics, against NumPy transcriptions of the equations with explicit loops over examples,
padding included."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from jal.errors import JalError
from jal.objectives import adversarial


_RNG = np.random.default_rng(0)


def _log_sigmoid(x):
  # log(1 / (1 + e^-x)), written so that it does not overflow at |x| = 100.
  return -np.logaddexp(0.0, -x)


def _bce(logit, target):
  """-[y log D + (1 - y) log(1 - D)], D = sigmoid(logit); 1 - D = sigmoid(-logit)."""
  return -(target * _log_sigmoid(logit) + (1 - target) * _log_sigmoid(-logit))


def _mean_over_real(values, mask):
  real = [v for v, m in zip(values, mask) if m]
  return sum(real) / len(real) if real else 0.0


# ---------------------------------------------------------------------------- VAE loss


def test_vae_loss_terms_match_the_equations_with_padding():
  x = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
  recon = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
  mu = _RNG.normal(size=(4, 3)).astype(np.float32)
  logvar = _RNG.normal(size=(4, 3)).astype(np.float32)
  x[3] = np.inf  # a padding row may hold anything
  mask = np.array([1, 1, 1, 0], np.float32)
  mse, kl = [], []
  for b in range(4):
    errors = [(x[b, h, w, c] - recon[b, h, w, c]) ** 2
              for h in range(3) for w in range(2) for c in range(2)]
    mse.append(sum(errors) / len(errors))
    # KL(N(mu, sigma^2) || N(0, 1)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    kl.append(-0.5 * sum(1 + logvar[b, j] - mu[b, j] ** 2 - math.exp(logvar[b, j])
                         for j in range(3)))
  got = jax.jit(adversarial.vae_loss_terms)(x, recon, mu, logvar, mask)
  assert set(got) == {'reconstruction', 'kl'}
  np.testing.assert_allclose(got['reconstruction'], _mean_over_real(mse, mask), rtol=1e-6)
  np.testing.assert_allclose(got['kl'], _mean_over_real(kl, mask), rtol=1e-6)
  # The posterior equal to the prior has KL 0; a perfect reconstruction has MSE 0.
  zero = adversarial.vae_loss_terms(x[:3], x[:3], np.zeros((3, 3)), np.zeros((3, 3)), np.ones(3))
  assert float(zero['reconstruction']) == 0.0 and float(zero['kl']) == 0.0
  with pytest.raises(JalError):
    adversarial.vae_loss_terms(x, recon[:, :2], mu, logvar, mask)
  with pytest.raises(JalError):
    adversarial.vae_loss_terms(x, recon, mu, logvar, mask[:3])


# ---------------------------------------------------------------- discriminator losses

_LOGITS_L = np.array([2.0, -1.0, 100.0, -100.0, 0.3], np.float32)
_LOGITS_U = np.array([-100.0, 100.0, 0.0, 1.5], np.float32)
_MASK_L = np.array([1, 1, 1, 1, 0], np.float32)
_MASK_U = np.array([1, 1, 1, 0], np.float32)


def test_discriminator_and_vae_adversarial_losses_match_the_bce_equations():
  # TA-VAAL Eq. 6: -E_L[log D] - E_U[log(1 - D)]; Eq. 5: -E_L[log D] - E_U[log D].
  bce_mean = lambda logits, target, mask: _mean_over_real(
      [_bce(l, target) for l in logits.astype(np.float64)], mask)
  labeled_as_labeled = bce_mean(_LOGITS_L, 1.0, _MASK_L)
  unlabeled_as_unlabeled = bce_mean(_LOGITS_U, 0.0, _MASK_U)
  unlabeled_as_labeled = bce_mean(_LOGITS_U, 1.0, _MASK_U)
  args = (_LOGITS_L, _LOGITS_U, _MASK_L, _MASK_U)
  d_loss = jax.jit(adversarial.discriminator_loss)(*args)
  vae_loss = jax.jit(adversarial.vae_adversarial_loss)(*args)
  np.testing.assert_allclose(d_loss, labeled_as_labeled + unlabeled_as_unlabeled, rtol=1e-6)
  np.testing.assert_allclose(vae_loss, labeled_as_labeled + unlabeled_as_labeled, rtol=1e-6)
  # Logits of +-100: finite losses and gradients (a naive log(sigmoid) would give inf / NaN).
  for loss in (adversarial.discriminator_loss, adversarial.vae_adversarial_loss):
    grads = jax.grad(loss, argnums=(0, 1))(*args)
    assert all(np.isfinite(g).all() for g in grads)
    np.testing.assert_array_equal(grads[0][4], 0.0)  # padding gets no gradient
  # Bool masks work too, and no real example gives 0.
  np.testing.assert_allclose(adversarial.discriminator_loss(
      _LOGITS_L, _LOGITS_U, _MASK_L.astype(bool), _MASK_U.astype(bool)), d_loss, rtol=1e-6)
  no_real = (_LOGITS_L, _LOGITS_U, np.zeros(5), np.zeros(4))
  assert float(adversarial.discriminator_loss(*no_real)) == 0.0
  with pytest.raises(JalError):
    adversarial.discriminator_loss(_LOGITS_L[:, None], _LOGITS_U, _MASK_L, _MASK_U)


def test_discriminator_accuracy_and_means():
  # Real labeled logits 2, -1, 100, -100: 2 right (> 0). Real unlabeled -100, 100, 0:
  # 2 right (<= 0). Pooled: 4 / 7.
  args = (_LOGITS_L, _LOGITS_U, _MASK_L, _MASK_U)
  np.testing.assert_allclose(jax.jit(adversarial.discriminator_accuracy)(*args), 4 / 7, rtol=1e-6)
  sigmoid = lambda v: 1 / (1 + math.exp(-v))
  means = jax.jit(adversarial.discriminator_means)(*args)
  np.testing.assert_allclose(means['labeled'],
                             _mean_over_real([sigmoid(l) for l in _LOGITS_L], _MASK_L), rtol=1e-6)
  np.testing.assert_allclose(means['unlabeled'],
                             _mean_over_real([sigmoid(l) for l in _LOGITS_U], _MASK_U), rtol=1e-6)
  no_real = (_LOGITS_L, _LOGITS_U, np.zeros(5), np.zeros(4))
  assert float(adversarial.discriminator_accuracy(*no_real)) == 0.0


# --------------------------------------------------------------------- minimax entropy


def test_minimax_entropy_matches_shannon_entropy_and_is_nan_free():
  logits = np.concatenate([
      _RNG.normal(size=(3, 4)) * 3,
      [[100.0, -100.0, -100.0, -100.0]],  # p = (1, 0, 0, 0): entropy 0
      [[100.0, 100.0, -100.0, -100.0]],   # two classes at 1/2: log 2
      np.zeros((1, 4)),                   # uniform: log 4
  ]).astype(np.float32)
  mask = np.array([1, 1, 1, 1, 1, 1], np.float32)
  entropies = []
  for row in logits.astype(np.float64):
    e = np.exp(row - row.max())
    p = e / e.sum()
    # Eq. 2 of Ebrahimi et al. (2020): -sum_k p_k log p_k, with 0 log 0 = 0.
    entropies.append(-sum(p_k * math.log(p_k) for p_k in p if p_k > 0))
  np.testing.assert_allclose(entropies[3:], [0.0, math.log(2), math.log(4)], atol=1e-12)
  got = jax.jit(adversarial.minimax_entropy)(logits, mask)
  np.testing.assert_allclose(got, np.mean(entropies), rtol=1e-5)
  np.testing.assert_allclose(adversarial.minimax_entropy(logits), got, rtol=1e-6)
  padded = np.array([1, 0, 1, 0, 1, 0], np.float32)
  np.testing.assert_allclose(adversarial.minimax_entropy(logits, padded),
                             _mean_over_real(entropies, padded), rtol=1e-5)
  grad = jax.grad(adversarial.minimax_entropy)(logits, padded)
  assert np.isfinite(grad).all()
  np.testing.assert_array_equal(grad[1], 0.0)
  with pytest.raises(JalError):
    adversarial.minimax_entropy(logits[0])


# -------------------------------------------------------------------- pool diagnostics


def test_pool_diagnostics_by_hand():
  out = adversarial.pool_diagnostics(np.array([2.0, -1.0]), np.array([-3.0, 0.0, 1e4]))
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  assert out['discriminator_mean_labeled'] == pytest.approx((sigmoid(2) + sigmoid(-1)) / 2)
  assert out['discriminator_mean_candidates'] == pytest.approx((sigmoid(-3) + 0.5 + 1) / 3)
  assert out['discriminator_accuracy'] == pytest.approx(3 / 5)  # 2.0, -3.0 and 0.0 are right
