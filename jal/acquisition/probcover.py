"""ProbCover's greedy max coverage and its ball radius (Yehuda, Dekel, Hacohen & Weinshall 2022).

"Active Learning Through a Covering Lens" (NeurIPS 2022) queries, in the
low-budget regime, the examples whose δ-balls cover the most of the data
(Max Probability Coverage, Sec. 3): on the graph with an edge ``x -> y``
when ``||x - y||_2 < δ`` between the self-supervised features of the
labeled pool and the candidates, the points in a labeled example's ball are
covered first; then, ``B`` times, the candidate whose ball holds the most
uncovered points is picked and its ball covered (Algorithm 1, the greedy
``(1 - 1/e)``-approximation of max coverage). The features are L2-normalised
by the caller, as in the authors' code (avihu111/TypiClust). When nothing is
left to cover, the authors' code picks point 0 again; here the remaining
picks follow a given random priority.

δ (Sec. 4.1): the largest radius whose balls are pure, i.e. hold a single
k-means pseudo-label (``K`` = the number of classes), for at least a
fraction ``α = 0.95`` of the points. A point's ball of radius δ is pure
exactly when δ is at most its distance ``r`` to the nearest point of
another pseudo-label, so the purity is ``π(δ) = mean(r >= δ)`` and the
largest δ with ``π(δ) >= α`` is the ``ceil(α n)``-th largest ``r``
(`purity_delta`); the paper scans a grid of δ, whose answer is the largest
grid value not above it.

Everything that compares distances runs on the device over blocks of
`BLOCK` points (jit, fixed shapes): memory O(n * BLOCK), never ``[n, n]``.
The greedy keeps each point's count of uncovered points in its ball and,
after a pick, subtracts the newly covered points' edges; every point is
newly covered once, so the whole greedy costs O(n^2 d) (plus O(n d) per
pick), as much as building the graph once.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Points per step (columns of the [n, BLOCK] distance blocks).
BLOCK = 256
# The paper's purity threshold (Sec. 4.1).
ALPHA = 0.95


def _centred(features: jax.Array, real: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Features centred at the real rows' mean (distances unchanged, the expansion's
  rounding error ``eps`` times the squared spread), and their squared norms."""
  x = features.astype(jnp.float32)
  x = x - jnp.sum(jnp.where(real[:, None], x, 0.0), axis=0) / jnp.maximum(jnp.sum(real), 1)
  return x, jnp.sum(jnp.square(x), axis=1)


def _sq_dist(x, sq, cols):
  """``[n, len(cols)]`` squared distances of every row to the rows ``cols``."""
  dot = jnp.dot(x, x[cols].T, precision=lax.Precision.HIGHEST)
  return jnp.maximum(sq[:, None] + sq[cols][None, :] - 2.0 * dot, 0.0)


def _ball_counts(x, sq, delta_sq, targets, block):
  """int32 ``[n]``: for each row, how many ``targets`` (bool ``[n]``) lie in its open ball.

  The targets are gathered into a padded list and visited ``block`` at a
  time, only as many blocks as there are targets: O(n * |targets| * d).
  """
  n = x.shape[0]
  count = jnp.sum(targets)
  listed = jnp.nonzero(targets, size=n, fill_value=n)[0]
  listed = jnp.concatenate([listed, jnp.full((block,), n, listed.dtype)])

  def body(carry):
    c, total = carry
    cols = lax.dynamic_slice_in_dim(listed, c * block, block)
    valid = cols < n
    inside = (_sq_dist(x, sq, jnp.minimum(cols, n - 1)) < delta_sq) & valid[None, :]
    return c + 1, total + jnp.sum(inside, axis=1, dtype=jnp.int32)

  return lax.while_loop(lambda carry: carry[0] * block < count, body,
                        (jnp.int32(0), jnp.zeros((n,), jnp.int32)))[1]


@functools.partial(jax.jit, static_argnames=('k', 'block'))
def greedy_cover(features: jax.Array, delta: jax.Array, labeled: jax.Array, pickable: jax.Array,
                 real: jax.Array, priority: jax.Array, k: int,
                 block: int = BLOCK) -> tuple[jax.Array, jax.Array]:
  """ProbCover's greedy (Yehuda et al. 2022, Algorithm 1) on the δ-ball graph.

  Covered first: every real point within ``delta`` of a ``labeled`` point.
  Then ``k`` times: ``u`` = the ``pickable`` point not yet picked whose open
  ball (``||x - x_u|| < delta``, itself included) holds the most uncovered
  real points, the lowest index on ties (``np.argmax``); its ball becomes
  covered. If no such point covers anything new, ``u`` is the unpicked
  pickable point of highest ``priority``.

  Memory O(n * block); compute O(n^2 d) for the whole run (module docstring).

  Args:
    features: float ``[n, d]`` (L2-normalised by the caller for the paper's
      setting).
    delta: float32 scalar, the radius (> 0).
    labeled: bool ``[n]``: the labeled pool's rows.
    pickable: bool ``[n]``: the candidates' rows (disjoint from ``labeled``),
      at least ``k`` of them.
    real: bool ``[n]``: rows that are points (False: padding).
    priority: float ``[n]``, distinct: the order of the picks once nothing
      is left to cover (e.g. a random permutation).
    k: static number of picks.
    block: static points per step.

  Returns:
    ``(picks, covered)``: int32 ``[k]`` distinct rows in the order picked,
    and int32 scalar, how many real points are covered after the picks.
  """
  n = features.shape[0]
  x, sq = _centred(features, real)
  delta_sq = jnp.square(jnp.asarray(delta, jnp.float32))
  labeled, pickable, real = labeled & real, pickable & real, real
  covered = real & (_ball_counts(x, sq, delta_sq, labeled, block) > 0)
  degree = _ball_counts(x, sq, delta_sq, real & ~covered, block)

  def pick(t, carry):
    covered, degree, picked, picks = carry
    open_ = pickable & ~picked
    score = jnp.where(open_, degree, -1)
    u = jnp.argmax(score).astype(jnp.int32)
    fallback = jnp.argmax(jnp.where(open_, priority, -jnp.inf)).astype(jnp.int32)
    u = jnp.where(score[u] > 0, u, fallback)
    ball = real & (_sq_dist(x, sq, u[None])[:, 0] < delta_sq)
    new = ball & ~covered
    degree = degree - _ball_counts(x, sq, delta_sq, new, block)
    return covered | new, degree, picked.at[u].set(True), picks.at[t].set(u)

  init = (covered, degree, jnp.zeros((n,), bool), jnp.zeros((k,), jnp.int32))
  covered, _, _, picks = lax.fori_loop(0, k, pick, init)
  return picks, jnp.sum(covered, dtype=jnp.int32)


@functools.partial(jax.jit, static_argnames=('block',))
def other_label_distance(features: jax.Array, labels: jax.Array, real: jax.Array,
                         block: int = BLOCK) -> jax.Array:
  """float32 ``[n]``: each real point's Euclidean distance to the nearest real point of
  another label (``inf`` if none; padding rows: ``inf``), over ``[n, block]`` blocks."""
  n = features.shape[0]
  x, sq = _centred(features, real)
  num_blocks = -(-n // block)

  def body(b, best):
    cols = jnp.minimum(b * block + jnp.arange(block), n - 1)
    other = (labels[:, None] != labels[cols][None, :]) & real[cols][None, :]
    return jnp.minimum(best, jnp.min(jnp.where(other, _sq_dist(x, sq, cols), jnp.inf), axis=1))

  best = lax.fori_loop(0, num_blocks, body, jnp.full((n,), jnp.inf, jnp.float32))
  return jnp.where(real, jnp.sqrt(best), jnp.inf)


def purity(distances: np.ndarray, delta: float) -> float:
  """π(δ): the fraction of points whose open δ-ball holds one pseudo-label, from
  `other_label_distance` (float ``[n]``)."""
  return float(np.mean(np.asarray(distances) >= delta))


def purity_delta(distances: np.ndarray, alpha: float = ALPHA) -> float:
  """The largest δ with purity ``π(δ) >= alpha`` (Yehuda et al. 2022, Sec. 4.1).

  Args:
    distances: float ``[n]``, ``n >= 1``: `other_label_distance` of the points.
    alpha: in ``(0, 1]``.

  Returns:
    The ``ceil(alpha n)``-th largest distance.

  Raises:
    ValueError: ``alpha`` outside ``(0, 1]``, no points, or that distance is
      infinite (fewer than two pseudo-labels: every ball is pure).
  """
  r = np.sort(np.asarray(distances, np.float64))[::-1]
  if not 0 < alpha <= 1 or r.size == 0:
    raise ValueError(f'alpha={alpha} must be in (0, 1] and there must be points ({r.size})')
  delta = float(r[max(math.ceil(alpha * r.size - 1e-9), 1) - 1])
  if not math.isfinite(delta):
    raise ValueError('every ball is pure: the pseudo-labels need at least two values')
  return delta
