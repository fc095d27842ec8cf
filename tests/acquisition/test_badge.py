"""Tests of jal.acquisition.badge, BADGE's k-means++ seeding of gradient embeddings (Ash et al.
2020): the factorised distances against the explicit embeddings ``(p - e_yhat) ⊗ h`` in float64
NumPy (far from the origin too), the first pick, D² sampling's frequencies against the D²
probabilities of a NumPy reference, padding, the degenerate case and a memory linear in n."""

from __future__ import annotations

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import softmax
from jal.acquisition import badge


def _embeddings(probs, feats):
  """float64 ``[n, C d]``: Sec. 3's ``g_x = (p - e_yhat) ⊗ h``, written out."""
  p, h = np.asarray(probs, np.float64), np.asarray(feats, np.float64)
  a = p - np.eye(p.shape[1])[np.argmax(p, axis=1)]
  return (a[:, :, None] * h[:, None, :]).reshape(len(p), -1)


def _case(seed, n=8, c=3, d=4, offset=0.0, logit_scale=2.0, spread=1.0, margin=0.0):
  rng = np.random.default_rng(seed)
  logits = logit_scale * rng.standard_normal((n, c))
  logits[:, 0] += margin
  feats = offset + spread * rng.standard_normal((n, d))
  return softmax(logits).astype(np.float32), feats.astype(np.float32)


def _pad(x, size=12):
  return np.pad(x, ((0, size - len(x)), (0, 0)))


# The seeding tests share two shapes, 8 rows and 8 real rows padded to 12, so that they share
# compilations: ``k`` is K, or 8 (every real row).
K = 5

@jax.jit
def _distances(probs, feats):
  """float32 ``[n, n]``: `badge.sq_distances_to` from every row."""
  a = badge.gradient_factors(probs)
  h = badge.centre(feats, jnp.ones(feats.shape[0], bool))
  return jax.vmap(lambda c: badge.sq_distances_to(a, h, c), out_axes=1)(jnp.arange(feats.shape[0]))


@pytest.mark.parametrize('near', [False, True])
def test_factorised_distances_equal_the_explicit_embedding_distances(near):
  """``near``: every point predicts class 0 with nearly the same probabilities, and the features
  sit at 100 with spread 0.1, so |g|^2 is 1e5 to 5e6 times a distance: the plain expansion
  |g_i|^2 + |g_j|^2 - 2<a_i,a_j><h_i,h_j> in float32 misses by more than 1% (checked, so the
  fixture bites); the midpoint form on centred features stays within the tolerance."""
  if near:
    probs, feats = _case(0, n=12, c=4, d=6, offset=100.0, spread=0.1, logit_scale=1e-3, margin=4.0)
  else:
    probs, feats = _case(0, n=12, c=4, d=6)
  g = _embeddings(probs, feats)
  expected = ((g[:, None, :] - g[None, :, :]) ** 2).sum(-1)
  a = badge.gradient_factors(jnp.asarray(probs))
  got = np.asarray(_distances(probs, feats))
  chex.assert_shape(got, expected.shape)
  off = ~np.eye(len(g), dtype=bool)
  np.testing.assert_allclose(got[off], expected[off], rtol=1e-4)
  np.testing.assert_array_equal(np.diag(got), 0.0)  # a point is at distance 0 from itself
  np.testing.assert_allclose(np.asarray(badge.sq_norms(a, jnp.asarray(feats))),
                             (g ** 2).sum(1), rtol=1e-5)
  if near:
    a32, h32 = np.asarray(a), feats
    sq = (a32 ** 2).sum(1) * (h32 ** 2).sum(1)
    naive = sq[:, None] + sq[None, :] - 2 * (a32 @ a32.T) * (h32 @ h32.T)
    assert np.max(np.abs(naive - expected)[off] / expected[off]) > 1e-2


def test_first_pick_is_the_largest_gradient_norm_and_picks_are_distinct():
  probs, feats = _case(1)
  norms = (_embeddings(probs, feats) ** 2).sum(1)
  top2 = np.sort(norms)[-2:]
  assert (top2[1] - top2[0]) / top2[1] > 1e-4  # no near tie
  picks = np.asarray(badge.kmeans_pp_seeding(probs, feats, K, jax.random.key(0)))
  chex.assert_shape(picks, (K,))
  assert picks.dtype == np.int32
  assert picks[0] == np.argmax(norms)
  assert len(set(picks.tolist())) == K
  # k = every real row: each once, padding never.
  picks = np.asarray(badge.kmeans_pp_seeding(_pad(probs), _pad(feats), 8, jax.random.key(0), 8))
  assert picks[0] == np.argmax(norms)
  np.testing.assert_array_equal(np.sort(picks), np.arange(8))


def _reference_second_pick_probabilities(probs, feats, first):
  """D² sampling (Arthur & Vassilvitskii 2007; Ash et al. 2020): P(i) = D(i)^2 / sum_j D(j)^2
  (and, for contrast, sampling proportional to D)."""
  g = _embeddings(probs, feats)
  d2 = ((g - g[first]) ** 2).sum(1)
  return d2 / d2.sum(), np.sqrt(d2) / np.sqrt(d2).sum()


def test_second_pick_frequencies_match_the_d2_probabilities():
  """A constructed case: the largest gradient is row 4's; rows 0-3 share another class factor and
  lie at gradient distances from it that D² weighs about 2%, 7%, 18% and 72%, D alone 9%, 16%,
  25% and 50%. 4,000 keys: each frequency within 4.5 binomial standard deviations of D², which
  sampling by D would miss by far."""
  probs = np.array([[0.6, 0.3, 0.1]] * 4 + [[0.5, 0.3, 0.2]], np.float32)
  feats = np.array([[9, 0], [6, 1], [2, 0], [-8, 0], [10, 0]], np.float32)
  num_keys = 4000
  keys = jax.random.split(jax.random.key(3), num_keys)
  picks = np.asarray(jax.vmap(lambda key: badge.kmeans_pp_seeding(probs, feats, 2, key))(keys))
  norms = (_embeddings(probs, feats) ** 2).sum(1)
  assert np.argmax(norms) == 4 and (picks[:, 0] == 4).all()
  expected, by_distance = _reference_second_pick_probabilities(probs, feats, 4)
  freq = np.bincount(picks[:, 1], minlength=5) / num_keys
  tolerance = 4.5 * np.sqrt(expected * (1 - expected) / num_keys)
  assert np.all(np.abs(freq - expected) <= tolerance), (freq, expected)
  assert np.all(np.abs(by_distance - expected)[:4] > 2 * tolerance[:4])  # D-sampling would fail
  assert freq[4] == 0.0


def test_uniform_first_center_draws_every_real_row_alike():
  probs, feats = _case(4)
  num_keys = 2000
  keys = jax.random.split(jax.random.key(5), num_keys)
  first = np.asarray(jax.vmap(lambda key: badge.kmeans_pp_seeding(
      _pad(probs), _pad(feats), 1, key, 8, first='uniform'))(keys))[:, 0]
  freq = np.bincount(first, minlength=12) / num_keys
  np.testing.assert_array_equal(freq[8:], 0.0)
  assert np.all(np.abs(freq[:8] - 1 / 8) <= 4.5 * np.sqrt(1 / 8 * 7 / 8 / num_keys))


def test_padded_call_equals_unpadded_call():
  probs, feats = _case(6, offset=3.0)
  for seed in range(3):
    key = jax.random.key(seed)
    unpadded = np.asarray(badge.kmeans_pp_seeding(probs, feats, K, key))
    padded = np.asarray(badge.kmeans_pp_seeding(_pad(probs), _pad(feats), K, key, 8))
    np.testing.assert_array_equal(padded, unpadded)
    assert len(set(padded.tolist())) == K


def test_equal_gradients_fall_back_to_uniform_among_the_unpicked():
  """Every gradient equal (one row repeated): every D^2 is 0 after the first pick, so the rest are
  drawn uniformly among the unpicked real rows: distinct, never padding, in varying orders."""
  probs, feats = _case(8, n=1)
  probs, feats = _pad(np.repeat(probs, 8, axis=0)), _pad(np.repeat(feats, 8, axis=0))
  orders = set()
  for seed in range(4):
    picks = np.asarray(badge.kmeans_pp_seeding(probs, feats, 8, jax.random.key(seed), 8))
    np.testing.assert_array_equal(np.sort(picks), np.arange(8))
    orders.add(tuple(picks.tolist()))
  assert len(orders) > 1


def test_duplicates_of_a_center_are_not_drawn_while_others_remain():
  """Rows 6 and 7 duplicate rows 0 and 1: with 6 distinct gradients and k = 5, no pick is the
  duplicate of another."""
  probs, feats = _case(9, n=6)
  probs, feats = np.concatenate([probs, probs[:2]]), np.concatenate([feats, feats[:2]])
  for seed in range(5):
    picks = np.asarray(badge.kmeans_pp_seeding(probs, feats, K, jax.random.key(seed)))
    chosen = set(picks.tolist())
    assert len(chosen) == K
    assert not ({0, 6} <= chosen or {1, 7} <= chosen), picks


def test_k_zero_and_bad_arguments():
  probs, feats = _case(10)
  chex.assert_shape(badge.kmeans_pp_seeding(probs, feats, 0, jax.random.key(0)), (0,))
  with pytest.raises(ValueError, match='k=9'):
    badge.kmeans_pp_seeding(probs, feats, 9, jax.random.key(0))
  with pytest.raises(ValueError, match='first'):
    badge.kmeans_pp_seeding(probs, feats, 2, jax.random.key(0), first='max')
  with pytest.raises(ValueError, match='same n'):
    badge.kmeans_pp_seeding(probs, feats[:3], 2, jax.random.key(0))


def test_memory_is_linear_in_the_points():
  """100,000 candidates, 10 classes, 512 features, compiled but not run: the [n, C d] embeddings
  would be 2 GB; no array in the optimized HLO is larger than the features."""
  n, c, d = 100_000, 10, 512
  compiled = badge.kmeans_pp_seeding.lower(
      jax.ShapeDtypeStruct((n, c), jnp.float32), jax.ShapeDtypeStruct((n, d), jnp.float32),
      10, jax.random.key(0)).compile()
  shapes = re.findall(r'\b(?:f32|s32|pred|f64|s64|u32)\[([\d,]+)\]', compiled.as_text())
  assert shapes
  largest = max(int(np.prod([int(s) for s in shape.split(',')])) for shape in shapes)
  assert largest <= n * d, largest
