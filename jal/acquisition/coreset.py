"""The k-center greedy of CoreSet (Sener & Savarese, ICLR 2018, Algorithm 1).

"Active Learning for Convolutional Neural Networks: A Core-Set Approach"
casts the query as a k-center problem over the labeled pool ``s0`` and the
candidates: choose ``k`` candidates so that the largest distance from any
point to its nearest chosen-or-labeled point is as small as possible. The
greedy of Algorithm 1 (a 2-approximation) repeats ``k`` times

  u = argmax_{i not in s} min_{j in s} Delta(x_i, x_j),     s = s ∪ {u},

starting from ``s = s0``. This is the greedy alone: the paper's robust
k-center, a mixed integer program with outliers that refines the greedy
(Sec. 4.3), is not implemented (the SCAL paper's CoreSet baseline and
google/active-learning's ``kcenter_greedy.py`` use the greedy too).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

# Labeled centers per step of the initial minimum: the distance block is
# ``[n, CENTER_BLOCK]`` float32, a quarter of the points for ``d = 512``.
CENTER_BLOCK = 128
# Points per step of the initial minimum (the nearest center, then its distance
# by direct differences).
POINT_BLOCK = 4096


def _nearest_center(points: jax.Array, centers: jax.Array, shift: jax.Array,
                    num_centers: jax.Array, block: int, point_block: int) -> jax.Array:
  """The index of each point's nearest center, by the matmul expansion after a shift.

  ``||x - c||^2 = |x'|^2 - 2 x'.c' + |c'|^2`` with ``x' = x - shift`` and
  ``c' = c - shift`` (a common shift changes no distance, only the rounding),
  over blocks of ``point_block`` points and ``block`` centers (each last block
  shifted back to end at ``n`` or ``m``: it overlaps its neighbour, which
  cannot change a minimum, and needs no padded copy), so the largest buffers
  are ``[point_block, d]`` and ``[point_block, block]``: the shifted points are
  never materialised whole. The expansion is only used to *choose* the
  center (its rounding error, about ``eps (|x'|^2 + |c'|^2)``, can only swap
  two centers that are that close to equidistant); the distance itself is
  recomputed by `_sq_dist_to_rows`.

  Args:
    points: float32 ``[n, d]``.
    centers: float32 ``[m, d]``, ``m >= 1``.
    shift: float32 ``[d]``.
    num_centers: int32 scalar: only ``centers[:num_centers]`` count (the rest
      is padding).
    block: static number of centers per step.
    point_block: static number of points per step.

  Returns:
    int32 ``[n]``, positions into ``centers``; the first on ties.
  """
  n, m = points.shape[0], centers.shape[0]
  block, point_block = min(block, m), min(point_block, n)
  centers = centers - shift  # [m, d]: the small operand
  centers_sq = jnp.sum(jnp.square(centers), axis=1)

  def points_body(p, out):
    start_p = jnp.minimum(p * point_block, n - point_block)
    x = lax.dynamic_slice_in_dim(points, start_p, point_block) - shift
    x_sq = jnp.sum(jnp.square(x), axis=1)

    def centers_body(b, carry):
      best, arg = carry
      start = jnp.minimum(b * block, m - block)
      c = lax.dynamic_slice_in_dim(centers, start, block)
      dist = (x_sq[:, None] - 2.0 * jnp.dot(x, c.T, precision=lax.Precision.HIGHEST)
              + lax.dynamic_slice_in_dim(centers_sq, start, block)[None, :])
      dist = jnp.where((start + jnp.arange(block) < num_centers)[None, :], dist, jnp.inf)
      block_arg = jnp.argmin(dist, axis=1).astype(jnp.int32)
      block_best = jnp.min(dist, axis=1)
      better = block_best < best  # strict: an earlier block keeps a tie
      return jnp.where(better, block_best, best), jnp.where(better, block_arg + start, arg)

    init = (jnp.full((point_block,), jnp.inf, jnp.float32),
            jnp.zeros((point_block,), jnp.int32))
    arg = lax.fori_loop(0, -(-m // block), centers_body, init)[1]
    return lax.dynamic_update_slice_in_dim(out, arg, start_p, 0)

  return lax.fori_loop(0, -(-n // point_block), points_body, jnp.zeros((n,), jnp.int32))


def _sq_dist_to_rows(points: jax.Array, centers: jax.Array, rows: jax.Array,
                     block: int) -> jax.Array:
  """``sum_d (points[i] - centers[rows[i]])^2`` by direct differences, blockwise.

  Blocks of ``block`` points (the last one shifted back to end at ``n``, so it
  overlaps its neighbour and recomputes a few identical values), so the
  gathered centers take ``[block, d]``, not ``[n, d]``.

  Args:
    points: float32 ``[n, d]``, ``n >= 1``.
    centers: float32 ``[m, d]``.
    rows: int32 ``[n]``, positions into ``centers``.
    block: static number of points per step.

  Returns:
    float32 ``[n]``.
  """
  n = points.shape[0]
  block = min(block, n)

  def body(b, out):
    start = jnp.minimum(b * block, n - block)
    x = lax.dynamic_slice_in_dim(points, start, block)
    c = jnp.take(centers, lax.dynamic_slice_in_dim(rows, start, block), axis=0)
    return lax.dynamic_update_slice_in_dim(out, jnp.sum(jnp.square(x - c), axis=1), start, 0)

  return lax.fori_loop(0, -(-n // block), body, jnp.zeros((n,), jnp.float32))


@functools.partial(jax.jit, static_argnames=('k',))
def k_center_greedy(points: jax.Array, centers: jax.Array, k: int,
                    num_points: jax.Array | int | None = None,
                    num_centers: jax.Array | int | None = None) -> jax.Array:
  """The k-center greedy of Sener & Savarese (ICLR 2018, Algorithm 1).

  With ``Delta(a, b) = ||a - b||^2`` (squared Euclidean: the same argmax as the
  paper's Euclidean distance), ``k`` steps of

    D_i = min_{j in s} Delta(x_i, x_j),   u = argmax_{i not in s} D_i,   s = s ∪ {u},

  from ``s`` = the centers, kept as a running minimum: ``D`` starts as the
  squared distance of each point to its nearest center and, after each pick
  ``u``, becomes ``min(D, Delta(x, x_u))``, with ``D_u = -inf`` so that no
  point is picked twice, even when points are duplicated (zero distance).

  Ties go to the lowest index, as with ``np.argmax``. With no centers
  (``m = 0`` or ``num_centers = 0``) Algorithm 1 starts from an arbitrary point; here ``D`` starts at
  ``+inf`` everywhere, so the first pick is point 0 and the run is
  deterministic.

  Every distance that ``D`` holds is a direct difference ``sum_d (x - c)^2``
  in float32, as a NumPy reference computes it, so the picks are NumPy's
  unless two distances are within float32 rounding of each other. To find
  each point's nearest center, the ``m`` centers are compared in blocks of
  `CENTER_BLOCK` with the matmul expansion (faster than blocked direct
  differences: ``BENCHMARKS.md``) after centring points and centers at
  the points' mean, so the expansion's cancellation error is about ``eps``
  times the squared spread, not ``eps |x|^2`` (which changed 6 of 600 picks
  for features offset by 100 with spread 1); the distance to the chosen
  center is then recomputed by direct differences. Every product runs at
  ``lax.Precision.HIGHEST`` (full float32, never TF32 or bf16 passes).

  Memory is O(n d): besides the inputs, a ``[POINT_BLOCK, CENTER_BLOCK]``
  distance block, ``[POINT_BLOCK, d]`` blocks and a few ``[n]`` vectors;
  never ``[n, m]`` or ``[n, n]``. One million points and ten
  thousand centers of dimension 512 need about 0.6 GB besides the inputs.

  Args:
    points: float32 ``[n, d]``, the candidates' features (e.g. the task
      model's penultimate features); other float dtypes are cast to float32.
    centers: float32 ``[m, d]``, ``m >= 0``, the labeled pool's features.
    k: static number of picks, ``0 <= k <= n`` (and ``<= num_points``).
    num_points, num_centers: int32 scalars (traced: no recompilation when
      they change) when only ``points[:num_points]`` and
      ``centers[:num_centers]`` are real and the rest is padding: arrays
      padded to a few sizes compile a few times over all rounds
      (`bucket_size`). None: all rows are real.

  Returns:
    int32 ``[k]``: distinct positions into ``points``, in the order picked.
    With non-finite features the order is unspecified (still distinct).

  Raises:
    ValueError: if ``k`` is not in ``[0, n]`` or the shapes disagree (at trace
      time).
  """
  if points.ndim != 2 or centers.ndim != 2 or points.shape[1] != centers.shape[1]:
    raise ValueError(f'points {points.shape} and centers {centers.shape} must be [n, d] and '
                     f'[m, d] with the same d')
  n, m = points.shape[0], centers.shape[0]
  if not 0 <= k <= n:
    raise ValueError(f'k={k} must be in [0, {n}]: k-center greedy picks distinct points')
  if k == 0:
    return jnp.zeros((0,), jnp.int32)
  points = points.astype(jnp.float32)
  centers = centers.astype(jnp.float32)
  num_points = jnp.asarray(n if num_points is None else num_points, jnp.int32)
  num_centers = jnp.asarray(m if num_centers is None else num_centers, jnp.int32)
  real = jnp.arange(n) < num_points

  if m:
    # Distances do not change under a common shift, but the expansion's error
    # does: about eps (|x|^2 + |c|^2), so features far from the origin relative
    # to their spread (post-ReLU features) would choose wrong centers.
    # Centring both at the points' mean makes that error eps times the spread.
    shift = jnp.dot(real.astype(jnp.float32), points,  # a matvec: no [n, d] temporary
                    precision=lax.Precision.HIGHEST) / jnp.maximum(num_points, 1)
    nearest = _nearest_center(points, centers, shift, num_centers, CENTER_BLOCK, POINT_BLOCK)
    min_dist = _sq_dist_to_rows(points, centers, nearest, POINT_BLOCK)
    min_dist = jnp.where(num_centers > 0, min_dist, jnp.inf)
  else:
    min_dist = jnp.full((n,), jnp.inf, jnp.float32)
  min_dist = jnp.where(real, min_dist, -jnp.inf)  # padding is never picked

  def pick(t, carry):
    min_dist, picks = carry
    u = jnp.argmax(min_dist).astype(jnp.int32)
    x_u = lax.dynamic_index_in_dim(points, u, keepdims=False)
    dist = jnp.sum(jnp.square(points - x_u), axis=1)
    # A picked point stays at -inf even if ``dist`` is NaN (non-finite input).
    min_dist = jnp.where(min_dist == -jnp.inf, -jnp.inf, jnp.minimum(min_dist, dist))
    return min_dist.at[u].set(-jnp.inf), picks.at[t].set(u)

  _, picks = lax.fori_loop(0, k, pick, (min_dist, jnp.zeros((k,), jnp.int32)))
  return picks


def bucket_size(n: int, smallest: int = 256) -> int:
  """The padded size of ``n`` rows: the smallest ``2^j`` or ``3 * 2^(j-1)`` that holds them
  (at least ``smallest``), so sizes that drift over rounds share a compilation and
  padding wastes at most a third of the rows."""
  size = smallest
  while size < n:
    size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
  return size
