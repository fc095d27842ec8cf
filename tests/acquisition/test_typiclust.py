"""Tests of jal.acquisition.typiclust (Hacohen et al. 2022): typicality (Eq. 4) against a NumPy
reference on a blob with an outlier, the neighbour counts of the authors' code, and the cluster
choice of Algorithm 1 (the largest cluster with the fewest labeled examples)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jal.acquisition import typiclust


def reference_typicality(features, clusters, num_neighbors=20):
  """Eq. 4 within each cluster: 1 / mean Euclidean distance to the K = min(20, m // 2) nearest
  other members; 0 without a neighbour."""
  x = np.asarray(features, np.float64)
  out = np.zeros(len(x))
  for i in range(len(x)):
    members = np.flatnonzero((clusters == clusters[i]) & (np.arange(len(x)) != i))
    k = min(num_neighbors, (members.size + 1) // 2)
    if k == 0:
      continue
    dist = np.sort(np.sqrt(((x[members] - x[i]) ** 2).sum(-1)))[:k]
    out[i] = 1.0 / dist.mean()
  return out


def _typicality(features, clusters, max_neighbors=20):
  clusters = np.asarray(clusters, np.int32)
  return np.asarray(typiclust.typicality(
      jnp.asarray(features, jnp.float32), jnp.asarray(clusters),
      jnp.asarray(typiclust.neighbor_counts(clusters, max_neighbors)),
      max_neighbors=max_neighbors, block=8))


def test_typicality_matches_eq_4_and_ranks_the_blob_centre_first():
  rng = np.random.default_rng(0)
  blob = rng.normal(0.0, 0.1, (30, 3))
  blob[0] = 0.0  # the centre of the blob
  outlier = np.array([[3.0, 0.0, 0.0]])
  other = rng.normal(5.0, 1.0, (9, 3))  # a second cluster, of 9: K = 4
  features = np.concatenate([blob, outlier, other]).astype(np.float32)
  clusters = np.array([0] * 31 + [1] * 9)
  got = _typicality(features, clusters)
  np.testing.assert_allclose(got, reference_typicality(features, clusters), rtol=2e-4)
  assert np.argmin(got[:31]) == 30  # the outlier is the least typical of its cluster
  # A known answer: 0, 1, 2, 3 and 10 in one cluster, K = 5 // 2 = 2 nearest: mean distances
  # 1.5, 1, 1, 1.5 and 7.5.
  line = np.array([[0], [1], [2], [3], [10]], np.float32)
  np.testing.assert_allclose(_typicality(line, np.zeros(5)), 1 / np.array([1.5, 1, 1, 1.5, 7.5]),
                             rtol=1e-5)
  # Padding rows (cluster -1) get 0 and change nothing.
  padded = np.concatenate([features, np.full((5, 3), 7.0, np.float32)])
  got_padded = _typicality(padded, np.concatenate([clusters, [-1] * 5]))
  np.testing.assert_allclose(got_padded, np.concatenate([got, np.zeros(5)]), rtol=1e-4)


def test_neighbor_counts_and_a_lone_point():
  clusters = np.array([0, 0, 0, 1, 2, 2, -1] + [3] * 50)
  np.testing.assert_array_equal(typiclust.neighbor_counts(clusters),
                                [1, 1, 1, 0, 1, 1, 0] + [20] * 50)
  got = _typicality(np.arange(57, dtype=np.float32)[:, None], clusters)
  assert got[3] == 0.0 and got[6] == 0.0  # no neighbour; padding
  assert typiclust.num_clusters(10, 20) == 30 and typiclust.num_clusters(900, 100) == 500


def test_select_takes_the_largest_uncovered_clusters_most_typical_points():
  # Clusters (labeled + candidates): 0: 10 (2 labeled), 1: 12 (0), 2: 8 (0), 3: 4 (0, small).
  cand = np.array([0] * 8 + [1] * 12 + [2] * 8 + [3] * 4)
  labeled = np.array([0, 0])
  typ = np.arange(cand.size, dtype=np.float64)[::-1].copy()  # earlier = more typical
  typ[25] = 100.0  # cluster 2's most typical
  picks = typiclust.select(cand, labeled, typ, 4)
  # Uncovered first, largest first: 1 (12), 2 (8); then 1 again (1 labeled, 12), 2, ...
  # cluster 3 (4 examples) is too small; cluster 0 has 2 labeled.
  assert list(cand[picks]) == [1, 2, 1, 2]
  np.testing.assert_array_equal(picks, [8, 25, 9, 20])
  # With 2 labeled each, the largest (1) goes first, then 0 (10) before 2 (8).
  assert list(cand[typiclust.select(cand, labeled, typ, 6)]) == [1, 2, 1, 2, 1, 0]
  # All 32 candidates: every one, the small cluster last.
  everything = typiclust.select(cand, labeled, typ, 100)
  assert sorted(everything) == list(range(32)) and set(cand[everything[-4:]]) == {3}
