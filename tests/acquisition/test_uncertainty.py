"""Tests of jal.acquisition.uncertainty, the scores of the uncertainty baselines: entropy, least
confidence and margin (Settles 2009), BALD (Gal et al. 2017), DBAL's max-entropy of the averaged
prediction, the variation ratio (Beluch et al. 2018) and the log of the mean probability over
samples, against NumPy references with explicit loops, with ties, one-hot rows and classes of
probability 0."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import softmax as _softmax
from jal.acquisition import uncertainty


entropy = jax.jit(uncertainty.entropy)


def _ref_entropy(logits: np.ndarray) -> np.ndarray:
  p = _softmax(logits)
  return -np.sum(p * np.log(p), axis=-1)


# ----------------------------------------------------------------------------- entropy


@pytest.mark.parametrize('seed,batch,num_classes,scale', [(0, 5, 10, 1.0), (1, 3, 2, 4.0)])
def test_entropy_matches_reference(seed, batch, num_classes, scale):
  logits = scale * np.random.default_rng(seed).normal(size=(batch, num_classes)).astype(np.float32)
  got = entropy(jnp.asarray(logits))
  chex.assert_shape(got, (batch,))
  assert got.dtype == jnp.float32
  chex.assert_trees_all_close(got, _ref_entropy(logits).astype(np.float32), atol=1e-5)


def test_entropy_bounds():
  logits = np.zeros((2, 7), np.float32)
  logits[1, 2] = 500.0  # one-hot: 0 nats, and no NaN from 0 * log 0
  got = np.asarray(entropy(jnp.asarray(logits)))
  np.testing.assert_allclose(got, [np.log(7), 0.0], atol=1e-6)


def test_entropy_with_a_zero_probability_class_is_not_nan():
  logits = np.array([[-np.inf, 1.0, 1.0], [0.0, -np.inf, -np.inf]], np.float32)
  np.testing.assert_allclose(np.asarray(entropy(jnp.asarray(logits))), [np.log(2), 0.0],
                             atol=1e-6)


# --------------------------------------------------------- least confidence and margin


def _reference_least_confidence_and_margin(logits):
  """Settles 2009, Sec. 3.1, in plain NumPy: 1 - p_max and -(p_(1) - p_(2))."""
  p = _softmax(logits.astype(np.float64))
  ordered = np.sort(p, axis=-1)[:, ::-1]
  return 1.0 - ordered[:, 0], ordered[:, 1] - ordered[:, 0]


# Random logits, a three-way tie, a two-way tie at the top, a near one-hot
# (p = 1 and p = 0 to float precision), a class with probability exactly 0.
_LOGITS = np.concatenate([
    np.random.default_rng(0).normal(size=(6, 5)) * 3,
    [[0, 0, 0, -2, -2], [4, 4, 1, 0, 0], [300, 0, 0, 0, 0], [-np.inf, 2, 1, 0, 0]],
]).astype(np.float32)


def test_least_confidence_and_margin_match_reference():
  lc = np.asarray(jax.jit(uncertainty.least_confidence)(jnp.asarray(_LOGITS)))
  margin = np.asarray(jax.jit(uncertainty.margin)(jnp.asarray(_LOGITS)))
  want_lc, want_margin = _reference_least_confidence_and_margin(_LOGITS)
  assert lc.dtype == margin.dtype == np.float32
  assert np.isfinite(lc).all() and np.isfinite(margin).all()
  np.testing.assert_allclose(lc, want_lc, atol=1e-6)
  np.testing.assert_allclose(margin, want_margin, atol=1e-6)
  # Ties at the top give margin 0 (the most uncertain); the one-hot row is the
  # most certain under both scores.
  assert margin[7] == 0.0 and margin[6] == 0.0
  assert lc[8] == 0.0 and margin[8] == -1.0


def test_least_confidence_bounds_and_two_classes():
  logits = jnp.zeros((1, 4))
  np.testing.assert_allclose(uncertainty.least_confidence(logits), [0.75])
  np.testing.assert_allclose(uncertainty.margin(jnp.array([[1.0, 0.0]])),
                             [-(np.tanh(0.5))], atol=1e-6)  # p1 - p2 = tanh(d / 2)


# -------------------------------------------------- BALD, DBAL and the variation ratio


def _entropy(p):
  return -sum(p_c * np.log(p_c) for p_c in p if p_c > 0)


def _reference_scores(logits):
  """BALD (Gal et al. 2017, Sec. 3; Krishnan et al. 2021, Eq. 8), DBAL's max-entropy of the
  averaged prediction, and the variation ratio (Beluch et al. 2018, Eq. 1)."""
  batch, samples, classes = logits.shape
  bald, max_entropy, variation = [], [], []
  for b in range(batch):
    p = [_softmax(logits[b, t]) for t in range(samples)]
    mean = sum(p) / samples
    max_entropy.append(_entropy(mean))
    bald.append(_entropy(mean) - sum(_entropy(q) for q in p) / samples)
    votes = [int(np.argmax(logits[b, t])) for t in range(samples)]
    variation.append(1.0 - max(votes.count(c) for c in range(classes)) / samples)
  return np.array(bald), np.array(max_entropy), np.array(variation)


# Random samples; samples that all agree (BALD 0); a one-hot that flips between
# samples (p = 0 and 1: BALD log 2); a class of probability 0 in every sample;
# a three-way vote split; identical uniform samples.
_RNG = np.random.default_rng(0)
_SAMPLES = np.concatenate([
    _RNG.normal(size=(4, 3, 4)) * 3,
    np.broadcast_to(_RNG.normal(size=(1, 1, 4)), (1, 3, 4)),
    [[[400, 0, 0, 0], [0, 400, 0, 0], [400, 0, 0, 0]]],
    [[[-np.inf, 1, 0, 0], [-np.inf, 0, 1, 0], [-np.inf, 0, 0, 1]]],
    [[[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]]],
    np.zeros((1, 3, 4)),
]).astype(np.float32)


def test_bald_dbal_and_variation_ratio_match_the_equations():
  got = [np.asarray(jax.jit(f)(jnp.asarray(_SAMPLES)))
         for f in (uncertainty.bald, uncertainty.predictive_entropy, uncertainty.variation_ratio)]
  for value, want in zip(got, _reference_scores(_SAMPLES)):
    chex.assert_shape(value, (_SAMPLES.shape[0],))
    assert value.dtype == np.float32 and np.isfinite(value).all()
    np.testing.assert_allclose(value, want, atol=2e-6)
  bald, max_entropy, variation = got
  assert bald[4] == pytest.approx(0.0, abs=1e-6) and bald[8] == pytest.approx(0.0, abs=1e-6)
  assert bald[5] == pytest.approx(2 / 3 * np.log(3 / 2) + 1 / 3 * np.log(3), abs=1e-5)
  assert max_entropy[8] == pytest.approx(np.log(4), abs=1e-6)
  np.testing.assert_allclose(variation[4:], [0, 1 / 3, 2 / 3, 2 / 3, 0], atol=1e-7)


def test_log_mean_probabilities_is_the_log_of_the_average():
  got = np.asarray(uncertainty.log_mean_probabilities(jnp.asarray(_SAMPLES)))
  want = np.mean([[_softmax(s) for s in row] for row in _SAMPLES], axis=1)
  np.testing.assert_allclose(np.exp(got), want, atol=1e-6)
  assert np.isneginf(got[6, 0])  # probability 0 in every sample stays -inf, not NaN
