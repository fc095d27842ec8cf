"""Tests of the PAL scores (Bhatnagar et al., Eq. 1, 3, 4) and of the entropy score.

The references are written in NumPy from the paper's equations, with explicit
loops, not from the JAX code.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.acquisition import pretext as pal
from jal.acquisition import uncertainty
from jal.models import ClassifierHead, MultiHeadNet, RotationHead, SmallCNN
from jal.strategies.pal import score_batch

self_supervision_score = jax.jit(pal.self_supervision_score)
classification_score = jax.jit(pal.classification_score)
hybrid_score = jax.jit(pal.hybrid_score, static_argnames=('lambda1', 'lambda2'))
entropy = jax.jit(uncertainty.entropy)


def _softmax(z: np.ndarray) -> np.ndarray:
  z = np.asarray(z, np.float64)
  e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _ref_s_s(rotation_logits: np.ndarray) -> np.ndarray:
  """Eq. 1: S_S(x) = -sum_{i in 0..3} g(rot90_i(x))_i, with g the softmax output."""
  _, batch, _ = rotation_logits.shape
  out = np.zeros(batch)
  for b in range(batch):
    total = 0.0
    for i in range(4):
      total += _softmax(rotation_logits[i, b])[i]
    out[b] = -total
  return out


def _ref_s_c(logits: np.ndarray) -> np.ndarray:
  """Eq. 3: S_C(x) = -KL(U || h(x)) = -sum_c (1/C) log((1/C) / h_c)."""
  batch, num_classes = logits.shape
  out = np.zeros(batch)
  for b in range(batch):
    h = _softmax(logits[b])
    kl = sum((1.0 / num_classes) * np.log((1.0 / num_classes) / h[c]) for c in range(num_classes))
    out[b] = -kl
  return out


def _ref_entropy(logits: np.ndarray) -> np.ndarray:
  p = _softmax(logits)
  return -np.sum(p * np.log(p), axis=-1)


# --------------------------------------------------------------------------- S_S


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


# --------------------------------------------------------------------------- S_C


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


# --------------------------------------------------------------------------- S


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


# --------------------------------------------------------------------------- entropy


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


# ------------------------------------------------------------------ least confidence and margin


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


# --------------------------------------------------------------------------- score_batch


_NUM_CLASSES = 3
_MEAN = np.array([0.4], np.float32)
_STD = np.array([0.2], np.float32)


def _numpy_variables(model, rng: np.random.Generator):
  """Variables of ``model`` drawn in NumPy (jax.random compiles slowly on a CPU).

  Conv and dense kernels ~ N(0, 1 / fan_in) (the heads 30 times larger, so the
  softmaxes are far from uniform), biases and BN shifts small, BN scales near
  1, running means near 0 and running variances in [0.5, 1.5]: eval-mode batch
  norm is then not an identity.
  """
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)),
                                             train=False))

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    shape = leaf.shape
    if "'kernel'" in name:
      x = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
      if 'heads_' in name:
        x = 30.0 * x
    elif "'scale'" in name:
      x = 1.0 + 0.1 * rng.normal(size=shape)
    elif "'var'" in name:
      x = rng.uniform(0.5, 1.5, size=shape)
    else:  # biases, BN shifts, running means
      x = 0.05 * rng.normal(size=shape)
    return jnp.asarray(x, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, dict(shapes))


@pytest.fixture(scope='module')
def scoring_setup():
  model = MultiHeadNet(SmallCNN(width=4), {'classifier': ClassifierHead(_NUM_CLASSES),
                                           'rotation': RotationHead()})
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
  variables = _numpy_variables(model, rng)
  return model, images, variables


def test_score_batch_matches_loop_over_rotations(scoring_setup):
  model, images, variables = scoring_setup
  fn = jax.jit(lambda v, im, idx: score_batch(model, jnp.asarray(_MEAN), jnp.asarray(_STD),
                                              v, im, idx))
  idx = np.array([4, 1, 5, 1], np.int32)  # out of order, with a repeat
  s_s, s_c = fn(variables, jnp.asarray(images), jnp.asarray(idx))
  chex.assert_shape(s_s, (4,))
  chex.assert_shape(s_c, (4,))

  # Reference: one forward pass per rotation, the rotation done with np.rot90.
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  x = (images[idx].astype(np.float32) / 255.0 - _MEAN) / _STD
  rotation_probs = []
  class_logits = None
  for i in range(4):
    out = apply(variables, jnp.asarray(np.rot90(x, i, axes=(1, 2)).copy()))
    rotation_probs.append(np.asarray(out['rotation']))
    if i == 0:
      class_logits = np.asarray(out['classifier'])
  rotation_logits = np.stack(rotation_probs)  # [4, B, 4]
  ref_s_s = _ref_s_s(rotation_logits)
  ref_s_c = _ref_s_c(class_logits)
  chex.assert_trees_all_close(s_s, ref_s_s.astype(np.float32), atol=1e-4)
  chex.assert_trees_all_close(s_c, ref_s_c.astype(np.float32), atol=1e-4)
  # The scores actually vary between examples (the check is not vacuous).
  assert np.ptp(ref_s_s[:3]) > 1e-4
  assert np.ptp(ref_s_c[:3]) > 1e-4
  # The repeated index scores the same.
  np.testing.assert_allclose(np.asarray(s_s)[1], np.asarray(s_s)[3], atol=1e-6)


def test_score_batch_rotation_order_matters(scoring_setup):
  # If the copies were scored against the wrong rotation labels (e.g. clockwise
  # instead of counter-clockwise), S_S would differ: swapping the 90 and 270
  # degree copies of the reference must change the value.
  model, images, variables = scoring_setup
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  x = (images[:3].astype(np.float32) / 255.0 - _MEAN) / _STD
  logits = np.stack([np.asarray(apply(variables, jnp.asarray(np.rot90(x, i, axes=(1, 2)).copy()))
                                ['rotation']) for i in range(4)])
  swapped = logits[[0, 3, 2, 1]]
  s_s, _ = jax.jit(lambda v, im, idx: score_batch(model, jnp.asarray(_MEAN), jnp.asarray(_STD),
                                                  v, im, idx))(
      variables, jnp.asarray(images), jnp.arange(3, dtype=jnp.int32))
  chex.assert_trees_all_close(s_s, _ref_s_s(logits).astype(np.float32), atol=1e-4)
  assert not np.allclose(_ref_s_s(swapped), _ref_s_s(logits), atol=1e-4)
