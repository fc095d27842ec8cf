"""Tests of jal.acquisition.pretext, PAL's scores (Bhatnagar et al. 2021): the self-supervision
score S_S (Eq. 1), the classification score S_C (Eq. 3) and the hybrid score S (Eq. 3 and 4),
against NumPy references written from the paper's equations with explicit loops, not from the JAX
code."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (reference_classification_score as _ref_s_c,
                     reference_self_supervision_score as _ref_s_s)
from jal.acquisition import pretext as pal


self_supervision_score = jax.jit(pal.self_supervision_score)
classification_score = jax.jit(pal.classification_score)
hybrid_score = jax.jit(pal.hybrid_score, static_argnames=('lambda1', 'lambda2'))


# --------------------------------------------------------------------------------- S_S


@pytest.mark.parametrize('seed,batch,scale', [(0, 5, 1.0), (1, 3, 4.0), (2, 1, 0.1)])
def test_self_supervision_score_matches_eq1(seed, batch, scale):
  logits = scale * np.random.default_rng(seed).normal(size=(4, batch, 4)).astype(np.float32)
  got = self_supervision_score(jnp.asarray(logits))
  chex.assert_shape(got, (batch,))
  assert got.dtype == jnp.float32
  chex.assert_trees_all_close(got, _ref_s_s(logits).astype(np.float32), atol=1e-6)


def test_self_supervision_score_uses_the_true_rotation_of_each_copy():
  # Copy i puts all mass on rotation i only for the matching copy; a score that
  # reads the wrong axis (e.g. the same rotation for every copy) gets -1 or -4.
  logits = np.full((4, 2, 4), -50.0, np.float32)
  for i in range(4):
    logits[i, 0, i] = 50.0  # example 0: right on every copy
    logits[i, 1, 0] = 50.0  # example 1: always predicts "0 degrees"
  got = self_supervision_score(jnp.asarray(logits))
  chex.assert_trees_all_close(got, np.array([-4.0, -1.0], np.float32), atol=1e-6)


def test_self_supervision_score_boundaries():
  certain_right = np.full((4, 1, 4), -100.0, np.float32)
  certain_wrong = np.full((4, 1, 4), -100.0, np.float32)
  for i in range(4):
    certain_right[i, 0, i] = 100.0
    certain_wrong[i, 0, (i + 1) % 4] = 100.0
  uniform = np.zeros((4, 1, 4), np.float32)
  chex.assert_trees_all_close(self_supervision_score(jnp.asarray(certain_right)),
                              np.array([-4.0], np.float32), atol=1e-6)
  chex.assert_trees_all_close(self_supervision_score(jnp.asarray(certain_wrong)),
                              np.array([0.0], np.float32), atol=1e-6)
  # Uniform: each copy gives 1/4 to its true rotation.
  chex.assert_trees_all_close(self_supervision_score(jnp.asarray(uniform)),
                              np.array([-1.0], np.float32), atol=1e-6)


def test_self_supervision_score_range():
  logits = 20.0 * np.random.default_rng(3).normal(size=(4, 256, 4)).astype(np.float32)
  got = np.asarray(self_supervision_score(jnp.asarray(logits)))
  assert np.all(got >= -4.0 - 1e-6) and np.all(got <= 1e-6)
  assert got.min() < -2.0 and got.max() > -2.0  # spread over the range, not constant


def test_self_supervision_score_accepts_bfloat16():
  logits = np.random.default_rng(4).normal(size=(4, 3, 4)).astype(np.float32)
  got = self_supervision_score(jnp.asarray(logits, jnp.bfloat16))
  assert got.dtype == jnp.float32
  ref = _ref_s_s(np.asarray(jnp.asarray(logits, jnp.bfloat16).astype(jnp.float32)))
  chex.assert_trees_all_close(got, ref.astype(np.float32), atol=1e-5)


# --------------------------------------------------------------------------------- S_C


@pytest.mark.parametrize('seed,batch,num_classes,scale',
                         [(0, 6, 10, 1.0), (1, 2, 3, 5.0), (2, 4, 2, 0.3)])
def test_classification_score_matches_minus_kl(seed, batch, num_classes, scale):
  logits = scale * np.random.default_rng(seed).normal(size=(batch, num_classes)).astype(np.float32)
  got = classification_score(jnp.asarray(logits))
  chex.assert_shape(got, (batch,))
  assert got.dtype == jnp.float32
  chex.assert_trees_all_close(got, _ref_s_c(logits).astype(np.float32), atol=1e-5)


def test_classification_score_uniform_is_zero_and_confident_is_very_negative():
  uniform = np.zeros((2, 10), np.float32)
  uniform[1] = 7.5  # any constant row is the uniform distribution
  chex.assert_trees_all_close(classification_score(jnp.asarray(uniform)),
                              np.zeros(2, np.float32), atol=1e-6)
  confident = np.zeros((1, 10), np.float32)
  confident[0, 3] = 200.0
  got = float(classification_score(jnp.asarray(confident))[0])
  # h_c = e^-200 for the nine others: -KL ~ log C - (9 / 10) * 200.
  assert got < -150.0
  assert np.isfinite(got)
  np.testing.assert_allclose(got, np.log(10) - 0.9 * 200.0, rtol=1e-4)


def test_classification_score_nonpositive_and_decreasing_with_confidence():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(64, 5)).astype(np.float32)
  got = np.asarray(classification_score(jnp.asarray(logits)))
  assert np.all(got <= 1e-6)
  # Scaling the logits up makes the prediction more confident: S_C falls.
  sharper = np.asarray(classification_score(jnp.asarray(3.0 * logits)))
  assert np.all(sharper < got)


# ----------------------------------------------------------------------------------- S


@pytest.mark.parametrize('lambda1', [0.0, 0.5, 1.3])
def test_hybrid_score_eq3(lambda1):
  rng = np.random.default_rng(6)
  rot = rng.normal(size=(4, 7, 4)).astype(np.float32)
  cls = rng.normal(size=(7, 10)).astype(np.float32)
  s_s = self_supervision_score(jnp.asarray(rot))
  s_c = classification_score(jnp.asarray(cls))
  got = hybrid_score(s_s, s_c, lambda1=lambda1)
  chex.assert_shape(got, (7,))
  ref = _ref_s_s(rot) + lambda1 * _ref_s_c(cls)
  chex.assert_trees_all_close(got, ref.astype(np.float32), atol=1e-5)


@pytest.mark.parametrize('lambda1,lambda2', [(1.0, 1.0), (0.2, 3.0), (0.0, 0.0)])
def test_hybrid_score_eq4(lambda1, lambda2):
  rng = np.random.default_rng(7)
  rot, rot_finetuned = rng.normal(size=(2, 4, 5, 4)).astype(np.float32)
  cls = rng.normal(size=(5, 4)).astype(np.float32)
  s_s = self_supervision_score(jnp.asarray(rot))
  s_c = classification_score(jnp.asarray(cls))
  s_d = self_supervision_score(jnp.asarray(rot_finetuned))
  got = hybrid_score(s_s, s_c, lambda1=lambda1, s_d=s_d, lambda2=lambda2)
  ref = _ref_s_s(rot) + lambda1 * _ref_s_c(cls) + lambda2 * _ref_s_s(rot_finetuned)
  chex.assert_trees_all_close(got, ref.astype(np.float32), atol=1e-5)


def test_hybrid_score_ranks_novel_above_familiar():
  # Familiar: the rotation head is right and certain, the classifier confident.
  # Novel: both heads uniform. The query takes the highest S.
  rot = np.zeros((4, 2, 4), np.float32)
  for i in range(4):
    rot[i, 0, i] = 30.0
  cls = np.zeros((2, 10), np.float32)
  cls[0, 0] = 30.0
  s = np.asarray(hybrid_score(self_supervision_score(jnp.asarray(rot)),
                              classification_score(jnp.asarray(cls)), lambda1=1.0))
  assert s[1] > s[0]
  np.testing.assert_allclose(s[1], -1.0, atol=1e-6)
