"""TypiClust's typicality and cluster choice (Hacohen, Dekel & Weinshall, ICML 2022).

"Active Learning on a Budget: Opposite Strategies Suit High and Low Budgets"
queries, in the low-budget regime, typical examples of uncovered regions
(Sec. 4, Algorithm 1): the self-supervised features of the labeled pool and
the candidates are clustered into ``|L| + B`` clusters (k-means, at most
`MAX_CLUSTERS`); then, ``B`` times, the largest cluster with the fewest
labeled examples gives its most typical candidate, with

  Typicality(x) = ( 1/K  sum_{x_i in K-NN(x)} ||x - x_i||_2 )^(-1)        (Eq. 4)

over the candidates of the same cluster, ``K = 20``. The details of the
authors' code (avihu111/TypiClust), followed here: clusters of at most
`MIN_CLUSTER_SIZE` examples are skipped; the neighbours are the cluster's
candidates (labeled examples left out), and ``K = min(20, m // 2)`` for a
cluster of ``m`` candidates ("in case we have too small cluster"). Where the
code differs from the paper, the paper is followed: typicality uses the
Euclidean distance (the code's faiss ``IndexFlatL2`` returns squared
distances) and no ``1e-5`` is added to the mean. The code orders the clusters
once and takes them in turn; here the order is updated after every pick (a
pick counts as labeled), which is the same until a cluster is visited twice;
and the typicality is computed once per query, so a cluster's second pick is
its second most typical candidate (the code recomputes it without the first
pick). Both matter only when fewer than ``B`` clusters are large enough.

This module is the math: `typicality` on the device, `select` on the host
(a loop over at most `MAX_CLUSTERS` clusters).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# The authors' code: TypiClust.MAX_NUM_CLUSTERS, MIN_CLUSTER_SIZE, K_NN.
MAX_CLUSTERS = 500
MIN_CLUSTER_SIZE = 5
NUM_NEIGHBORS = 20
# Rows per step of `typicality`: the distance block is [ROW_BLOCK, n] float32.
ROW_BLOCK = 256


def num_clusters(num_labeled: int, budget: int, max_clusters: int = MAX_CLUSTERS) -> int:
  """``min(|L| + B, max_clusters)``: how many clusters k-means makes (Sec. 4)."""
  return max(1, min(int(num_labeled) + int(budget), int(max_clusters)))


def neighbor_counts(clusters: np.ndarray, num_neighbors: int = NUM_NEIGHBORS) -> np.ndarray:
  """int32 ``[n]``: each point's ``K = min(num_neighbors, m // 2)``, ``m`` the points of its
  cluster (the authors' code); negative cluster ids (padding) get 0."""
  clusters = np.asarray(clusters, np.int64)
  real = clusters >= 0
  sizes = np.bincount(clusters[real], minlength=1)
  out = np.zeros(clusters.shape, np.int32)
  out[real] = np.minimum(num_neighbors, sizes[clusters[real]] // 2)
  return out


@functools.partial(jax.jit, static_argnames=('max_neighbors', 'block'))
def typicality(features: jax.Array, clusters: jax.Array, neighbors: jax.Array, *,
               max_neighbors: int = NUM_NEIGHBORS, block: int = ROW_BLOCK) -> jax.Array:
  """Typicality within clusters (Hacohen et al. 2022, Eq. 4).

  ``1 / mean(||x - x_i||_2 over x's K nearest other points of its cluster)``,
  ``K = neighbors[x]``; 0 where ``K = 0`` (no neighbour to measure) or the
  point is padding; ``inf`` where the ``K`` neighbours coincide with ``x``.

  Squared distances come from ``|x|^2 + |y|^2 - 2 x.y`` (full float32
  precision, after centring at the mean: the error is ``eps`` times the
  squared spread) over blocks of ``block`` rows, so the largest buffer is
  ``[block, n]``: memory O(n * block), compute O(n^2 d), whatever the
  clusters.

  Args:
    features: float ``[n, d]``.
    clusters: int32 ``[n]``, cluster ids; negative for padding rows.
    neighbors: int32 ``[n]``, ``0 <= K <= max_neighbors``
      (`neighbor_counts`).
    max_neighbors: static upper bound of ``K``.
    block: static rows per step.

  Returns:
    float32 ``[n]``.
  """
  n = features.shape[0]
  real = clusters >= 0
  x = features.astype(jnp.float32)
  x = x - jnp.sum(jnp.where(real[:, None], x, 0.0), axis=0) / jnp.maximum(jnp.sum(real), 1)
  sq = jnp.sum(jnp.square(x), axis=1)
  k = min(max_neighbors, n)
  num_blocks = -(-n // block)
  rows = jnp.arange(num_blocks * block).reshape(num_blocks, block)

  def one_block(row):
    i = jnp.minimum(row, n - 1)
    dot = jnp.dot(x[i], x.T, precision=lax.Precision.HIGHEST)
    dist = jnp.sqrt(jnp.maximum(sq[i][:, None] + sq[None, :] - 2.0 * dot, 0.0))
    same = (clusters[i][:, None] == clusters[None, :]) & real[None, :]
    same &= i[:, None] != jnp.arange(n)[None, :]
    nearest = -lax.top_k(-jnp.where(same, dist, jnp.inf), k)[0]  # [block, k], ascending
    count = neighbors[i]
    total = jnp.sum(jnp.where(jnp.arange(k)[None, :] < count[:, None], nearest, 0.0), axis=1)
    mean = total / jnp.maximum(count, 1)
    return jnp.where((count > 0) & real[i], 1.0 / mean, 0.0)

  return lax.map(one_block, rows).reshape(-1)[:n]


def select(candidate_clusters: np.ndarray, labeled_clusters: np.ndarray,
           typicality_: np.ndarray, budget: int,
           min_cluster_size: int = MIN_CLUSTER_SIZE) -> np.ndarray:
  """TypiClust's picks (Hacohen et al. 2022, Algorithm 1), on the host.

  ``min(budget, n)`` times: among the clusters with more than
  ``min_cluster_size`` examples (labeled and candidates) and a candidate
  left, the one with the fewest labeled examples (earlier picks count),
  then the largest, then the lowest id, gives its candidate of highest
  typicality (the first on ties). When no such cluster has a candidate
  left, the smaller clusters are used alike.

  Args:
    candidate_clusters: int ``[n]``, the candidates' cluster ids (>= 0).
    labeled_clusters: int ``[m]``, the labeled examples' cluster ids.
    typicality_: float ``[n]``, the candidates' typicality (`typicality`).
    budget: picks wanted, ``>= 0``.
    min_cluster_size: clusters of at most this many examples come last.

  Returns:
    int64 ``[min(budget, n)]``: distinct positions into the candidates, in
    the order picked.
  """
  cand = np.asarray(candidate_clusters, np.int64)
  lab = np.asarray(labeled_clusters, np.int64)
  typ = np.asarray(typicality_, np.float64)
  k = min(int(budget), cand.size)
  if k <= 0:
    return np.zeros(0, np.int64)
  count = int(max(cand.max(initial=-1), lab.max(initial=-1))) + 1
  sizes = np.bincount(np.concatenate([cand, lab]), minlength=count)
  labeled = np.bincount(lab, minlength=count)
  # Each cluster's candidates, most typical first (stable: the first on ties).
  order = np.lexsort((np.arange(cand.size), -typ, cand))
  starts = np.searchsorted(cand[order], np.arange(count))
  taken = np.zeros(count, np.int64)
  left = np.bincount(cand, minlength=count)
  large = sizes > min_cluster_size
  ids = np.arange(count)
  picks = []
  for _ in range(k):
    open_ = left > taken
    usable = open_ & large if (open_ & large).any() else open_
    c = ids[usable][np.lexsort((ids[usable], -sizes[usable], labeled[usable]))[0]]
    picks.append(order[starts[c] + taken[c]])
    taken[c] += 1
    labeled[c] += 1
  return np.asarray(picks, np.int64)
