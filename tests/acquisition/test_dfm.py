"""Tests of jal.acquisition.dfm, DFM's per-class PCA subspaces and reconstruction errors (Krishnan
et al. 2021), against scikit-learn's PCA, with a class that has no labeled example and a class
whose rank caps its components."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import sklearn.decomposition

from jal.acquisition import dfm


def test_dfm_reconstruction_error_matches_sklearn_pca():
  rng = np.random.default_rng(4)
  dim, components = 8, 3
  features = rng.normal(size=(50, dim)) @ rng.normal(size=(dim, dim))
  labels = np.repeat([0, 1], 25)
  subspaces = dfm.fit_class_subspaces(features, labels, 3, components)
  candidates = rng.normal(size=(12, dim)) * 3
  predictions = np.array([0, 1, 2] * 4)
  got = dfm.reconstruction_errors(candidates, predictions, subspaces)
  for k in (0, 1):
    pca = sklearn.decomposition.PCA(components).fit(features[labels == k])
    rows = predictions == k
    want = np.linalg.norm(candidates[rows] - pca.inverse_transform(pca.transform(
        candidates[rows])), axis=1)
    np.testing.assert_allclose(got[rows], want, rtol=1e-5)  # float32 on the device
  assert np.isposinf(got[predictions == 2]).all()  # class 2 has no labeled example
  assert subspaces.present.tolist() == [True, True, False]


def test_dfm_caps_components_at_the_class_rank():
  e = np.eye(4)
  features = np.stack([e[0], e[0] + e[1], 2 * e[2]])
  subspaces = dfm.fit_class_subspaces(features, np.array([0, 0, 1]), 2, num_components=3)
  # Two examples span one direction; one example spans none.
  assert np.linalg.matrix_rank(subspaces.components[0]) == 1
  assert not subspaces.components[1].any()
  got = dfm.reconstruction_errors(np.stack([e[1] * 5, e[3], 2 * e[2]]), np.array([0, 1, 1]),
                                  subspaces)
  mean = e[0] + 0.5 * e[1]
  np.testing.assert_allclose(got, [np.linalg.norm((5 * e[1] - mean) * [1, 0, 1, 1]),
                                   np.linalg.norm(e[3] - 2 * e[2]), 0.0], atol=1e-6)


def test_dfm_errors_of_device_arrays_far_from_the_origin():
  """Device features (as a query passes them) offset by +100 with spread 1: the float32
  residual, formed explicitly after centring, still matches float64 PCA."""
  rng = np.random.default_rng(5)
  dim = 6
  features = 100.0 + rng.normal(size=(40, dim))
  labels = np.repeat([0, 1], 20)
  subspaces = dfm.fit_class_subspaces(features, labels, 2, 2)
  candidates = 100.0 + rng.normal(size=(10, dim))
  predictions = np.array([0, 1] * 5)
  got = dfm.reconstruction_errors(jnp.asarray(candidates, jnp.float32),
                                  jnp.asarray(predictions, jnp.int32), subspaces)
  want = []
  for z, k in zip(candidates, predictions):
    centred = z - subspaces.means[k]
    basis = subspaces.components[k]
    want.append(np.linalg.norm(centred - basis @ (basis.T @ centred)))
  np.testing.assert_allclose(got, want, rtol=1e-4)
