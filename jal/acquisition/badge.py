"""BADGE's k-means++ seeding in the gradient embedding (Ash et al., ICLR 2020).

"Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds"
represents a candidate ``x`` by the gradient of the cross-entropy loss, with
respect to the weights ``W`` (``[C, d]``, bias left out) of the last linear
layer, at the label the model predicts, ``y_hat = argmax_c p_c(x)``:

  g_x = d CE(W h(x), y_hat) / d W = (p(x) - e_{y_hat}) ⊗ h(x),        (Sec. 3)

with ``p`` the softmax, ``e_c`` the one-hot vector of class ``c`` and ``h``
the penultimate features (the "hallucinated" gradient: its norm lower-bounds
the gradient norm for any label the oracle might give). The authors' code
embeds ``(e_{y_hat} - p) ⊗ h``, the negative; no distance or norm depends on
the sign. The batch is the k-means++ seeding (Arthur & Vassilvitskii 2007)
of the ``g_x``: after the first center, each next center is drawn with
probability proportional to ``D(x)^2``, the squared Euclidean distance from
``x`` to its nearest center so far ("D² sampling").

The ``[n, C d]`` embeddings are never formed. With ``a = p - e_{y_hat}``
(``[n, C]``) and ``h`` (``[n, d]``), ``<g_i, g_j> = <a_i, a_j> <h_i, h_j>``,
so memory is O(n (C + d)); see `sq_distances_to` for how a distance is
computed without the cancellation of the plain expansion.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

FIRST_CENTER = ('largest_norm', 'uniform')
# Squared feature distances below this fraction of ``|h'_i|^2 + |h'_c|^2`` are
# rounding (64 float32 epsilons): `sq_distances_to` makes them 0.
NOISE_FLOOR = 64 * float(jnp.finfo(jnp.float32).eps)


def gradient_factors(probabilities: jax.Array) -> jax.Array:
  """float32 ``[n, C]``: ``a = p - e_{y_hat}``, the class factor of the gradient embedding.

  ``y_hat`` is the first class of largest probability (as ``argmax``).

  Args:
    probabilities: float ``[n, C]``, softmax outputs.
  """
  p = probabilities.astype(jnp.float32)
  return p - jax.nn.one_hot(jnp.argmax(p, axis=1), p.shape[1], dtype=jnp.float32)


def sq_norms(factors: jax.Array, features: jax.Array) -> jax.Array:
  """float32 ``[n]``: ``|g_i|^2 = |a_i|^2 |h_i|^2`` (no cancellation: a product of sums of squares).

  Args:
    factors: float32 ``[n, C]``, `gradient_factors`.
    features: float32 ``[n, d]``.
  """
  return jnp.sum(jnp.square(factors), axis=1) * jnp.sum(jnp.square(features), axis=1)


class Centred(NamedTuple):
  """The features centred at their mean ``mu``, and what `sq_distances_to` needs of them.

  Attributes:
    centred: float32 ``[n, d]``, ``h' = h - mu``.
    sq: float32 ``[n]``, ``|h'_i|^2``.
    along: float32 ``[n]``, ``<h'_i, mu>``.
    mu_sq: float32 scalar, ``|mu|^2``.
  """
  centred: jax.Array
  sq: jax.Array
  along: jax.Array
  mu_sq: jax.Array


def centre(features: jax.Array, real: jax.Array) -> Centred:
  """`Centred` features, ``mu`` the mean of the ``real`` rows.

  Args:
    features: float32 ``[n, d]``.
    real: bool ``[n]``, the rows that count in the mean (not padding).
  """
  weight = real.astype(jnp.float32)
  mu = jnp.dot(weight, features, precision=lax.Precision.HIGHEST) / jnp.maximum(weight.sum(), 1.0)
  centred = features - mu
  return Centred(centred, jnp.sum(jnp.square(centred), axis=1),
                 jnp.dot(centred, mu, precision=lax.Precision.HIGHEST), jnp.sum(jnp.square(mu)))


def sq_distances_to(factors: jax.Array, h: Centred, c: jax.Array) -> jax.Array:
  """float32 ``[n]``: ``|g_i - g_c|^2`` for every ``i``, with ``g = a ⊗ h``, never formed.

  The plain expansion ``|g_i|^2 + |g_c|^2 - 2 <a_i, a_c> <h_i, h_c>`` loses
  about ``eps (|g_i|^2 + |g_c|^2)`` to cancellation: with post-ReLU features
  far from the origin that is larger than the distance between two near
  points, and D² sampling then weighs them by rounding noise. Instead, with
  the midpoints ``a_bar = (a_i + a_c) / 2``, ``h_bar = (h_i + h_c) / 2`` and
  the differences ``da = a_i - a_c``, ``dh = h_i - h_c``, exactly

    a_i ⊗ h_i - a_c ⊗ h_c = da ⊗ h_bar + a_bar ⊗ dh,
    |g_i - g_c|^2 = |da|^2 |h_bar|^2 + |a_bar|^2 |dh|^2 + 2 <da, a_bar> <h_bar, dh>.

  The class factors (``C`` columns, cheap) are differenced directly. The
  feature terms come from one matrix-vector product ``<h'_i, h'_c>`` of the
  features centred at their mean ``mu`` (`centre`), at
  ``lax.Precision.HIGHEST`` (full float32: never TF32 or bf16 passes):

    |dh|^2 = |h'_i|^2 + |h'_c|^2 - 2 <h'_i, h'_c>,
    <h_bar, dh> = (|h'_i|^2 - |h'_c|^2) / 2 + <h'_i, mu> - <h'_c, mu>,
    |h_bar|^2 = (|h'_i|^2 + |h'_c|^2 + 2 <h'_i, h'_c>) / 4 + <h'_i, mu> + <h'_c, mu> + |mu|^2,

  so a cancellation costs about ``eps`` times the features' spread
  ``|h'|^2`` (or ``|h'| |mu|``), not ``eps |h|^2``. ``|dh|^2`` at most
  `NOISE_FLOOR` ``(|h'_i|^2 + |h'_c|^2)`` (the product's rounding; about
  ``sqrt(d) eps`` of it) counts as 0, so a duplicate of the center is at
  exactly 0 and is never drawn. Clipped at 0. Direct differences over the
  ``[n, d]`` features instead measured 25x slower on a CPU (three
  reductions per pick against one matrix-vector product).

  Args:
    factors: float32 ``[n, C]``, ``a`` (`gradient_factors`).
    h: the `centre`d features.
    c: int32 scalar, the center's row.
  """
  a_c = factors[c]
  da, a_bar = factors - a_c, 0.5 * (factors + a_c)
  dots = jnp.dot(h.centred, h.centred[c], precision=lax.Precision.HIGHEST)
  sq_c, along_c = h.sq[c], h.along[c]
  dh_sq = h.sq + sq_c - 2.0 * dots
  # Within the product's rounding of 0 (a duplicate of the center): 0.
  dh_sq = jnp.where(dh_sq > NOISE_FLOOR * (h.sq + sq_c), dh_sq, 0.0)
  h_bar_dh = 0.5 * (h.sq - sq_c) + (h.along - along_c)
  h_bar_sq = 0.25 * (h.sq + sq_c + 2.0 * dots) + (h.along + along_c) + h.mu_sq
  dist = (jnp.sum(jnp.square(da), axis=1) * h_bar_sq
          + jnp.sum(jnp.square(a_bar), axis=1) * dh_sq
          + 2.0 * jnp.sum(da * a_bar, axis=1) * h_bar_dh)
  return jnp.where(c == jnp.arange(factors.shape[0]), 0.0, jnp.maximum(dist, 0.0))


@functools.partial(jax.jit, static_argnames=('k', 'first'))
def kmeans_pp_seeding(probabilities: jax.Array, features: jax.Array, k: int, key: jax.Array,
                      num_points: jax.Array | int | None = None,
                      first: str = 'largest_norm') -> jax.Array:
  """BADGE's batch: ``k`` k-means++ seeds of the gradient embeddings (Ash et al. 2020, Alg. 1).

  The first center is, with ``first='largest_norm'`` (default), the point of
  largest ``|g_x|`` (ties to the lowest index), as in the authors' code
  (``init_centers`` of ``JordanAsh/badge``): deterministic, and the most
  uncertain-and-confident-featured point. ``first='uniform'``: drawn uniformly
  among the real points, as in k-means++ (Arthur & Vassilvitskii 2007). Each
  next center ``u`` is drawn with

    P(u = i) = D_i^2 / sum_j D_j^2,    D_i^2 = min_{c in centers} |g_i - g_c|^2,

  ``D^2`` kept as a running minimum over the picks (one `sq_distances_to`
  per pick, O(n (C + d))). A picked point has ``D^2 = 0``, as has a
  duplicate of one, so neither is drawn again (the authors' code redraws
  picked points; it is the same distribution). If every unpicked point has
  ``D^2 = 0`` (all remaining gradients equal a center, e.g. all equal), the
  draw is uniform among the unpicked real points (the authors' code stops in
  a debugger there). Pick ``t`` draws by the inverse CDF with one uniform
  number from ``fold_in(key, t)`` (`_draw`), so padding changes no pick.

  Memory: the inputs, the centred features ``[n, d]`` and a few ``[n, C]``
  / ``[n]`` temporaries per pick; never ``[n, C d]`` or ``[n, n]``. Time per
  pick: one ``[n, d]`` matrix-vector product (`sq_distances_to`) and O(n C).

  Args:
    probabilities: float ``[n, C]``, the softmax of the task model.
    features: float ``[n, d]``, the inputs ``h`` of its last linear layer.
    k: static number of picks, ``0 <= k <= n`` (and ``<= num_points``).
    key: PRNG key.
    num_points: int32 scalar (traced: no recompilation when it changes) when
      only the first ``num_points`` rows are real and the rest padding
      (never picked); rows padded to a few sizes compile a few times over
      all rounds (`jal.acquisition.coreset.bucket_size`). None: all real.
    first: static, ``'largest_norm'`` or ``'uniform'`` (see above).

  Returns:
    int32 ``[k]``: distinct positions into the rows, in the order picked.
    With non-finite inputs the picks are unspecified (check first).

  Raises:
    ValueError: if ``k`` is not in ``[0, n]``, the shapes disagree or
      ``first`` is unknown (at trace time).
  """
  if probabilities.ndim != 2 or features.ndim != 2 or probabilities.shape[0] != features.shape[0]:
    raise ValueError(f'probabilities {probabilities.shape} and features {features.shape} must be '
                     f'[n, C] and [n, d] with the same n')
  if first not in FIRST_CENTER:
    raise ValueError(f"first={first!r} must be one of {FIRST_CENTER}")
  n = features.shape[0]
  if not 0 <= k <= n:
    raise ValueError(f'k={k} must be in [0, {n}]: k-means++ seeding picks distinct points')
  if k == 0:
    return jnp.zeros((0,), jnp.int32)
  factors = gradient_factors(probabilities)
  features = features.astype(jnp.float32)
  num_points = jnp.asarray(n if num_points is None else num_points, jnp.int32)
  real = jnp.arange(n) < num_points

  if first == 'largest_norm':
    u0 = jnp.argmax(jnp.where(real, sq_norms(factors, features), -jnp.inf)).astype(jnp.int32)
  else:
    u0 = _draw(jax.random.fold_in(key, 0), real.astype(jnp.float32))

  centred = centre(features, real)

  def add_center(u, min_dist, available):
    dist = sq_distances_to(factors, centred, u)
    return jnp.minimum(min_dist, dist), available.at[u].set(False)

  min_dist, available = add_center(u0, jnp.full((n,), jnp.inf, jnp.float32), real)
  picks = jnp.zeros((k,), jnp.int32).at[0].set(u0)

  def pick(t, carry):
    min_dist, available, picks = carry
    weight = jnp.where(available, min_dist, 0.0)
    weight = jnp.where(jnp.max(weight) > 0.0, weight, available.astype(jnp.float32))
    u = _draw(jax.random.fold_in(key, t), weight)
    min_dist, available = add_center(u, min_dist, available)
    return min_dist, available, picks.at[t].set(u)

  return lax.fori_loop(1, k, pick, (min_dist, available, picks))[2]


def _draw(key: jax.Array, weight: jax.Array) -> jax.Array:
  """int32 scalar: ``i`` with probability ``weight[i] / sum(weight)``, by the inverse CDF.

  One uniform number per draw, so the draw does not depend on how many
  zero-weight rows (padding) follow the real ones: a padded call picks what
  an unpadded one does. The first ``i`` whose running sum exceeds ``u *
  sum(weight)``; a zero weight is never drawn (its running sum equals its
  predecessor's), nor is the point after the last positive weight when
  ``u * sum`` rounds up to the sum.

  Args:
    key: PRNG key.
    weight: float32 ``[n]``, finite, ``>= 0``, not all 0.
  """
  cdf = jnp.cumsum(weight)
  threshold = jax.random.uniform(key, (), jnp.float32) * cdf[-1]
  last = weight.shape[0] - 1 - jnp.argmax((weight > 0.0)[::-1])
  return jnp.where(cdf[-1] > threshold, jnp.argmax(cdf > threshold), last).astype(jnp.int32)
