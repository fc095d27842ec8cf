"""Tests of jal.acquisition.feature_similarity, FeatureSim's score (Krishnan et al. 2021): a
candidate's highest cosine similarity to the labeled examples of its predicted class, by hand and,
block by block, against brute force."""

from __future__ import annotations

import numpy as np

from jal.acquisition import feature_similarity


def test_class_similarity_scores_known_answer():
  e = np.eye(4, dtype=np.float32)
  labeled = np.stack([e[0], e[0] + 0.5 * e[1], e[1], 3 * e[2]])
  labeled_labels = np.array([0, 0, 1, 2])
  candidates = np.stack([2 * e[0], e[1], e[0] + e[1], e[3], e[0]])
  predictions = np.array([0, 0, 1, 2, 3])  # class 3 has nothing labeled
  got = feature_similarity.class_similarity_scores(candidates, predictions, labeled,
                                                   labeled_labels)
  want = [1.0, 0.5 / np.sqrt(1.25), 1 / np.sqrt(2), 0.0, -np.inf]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_class_similarity_scores_blocks_match_brute_force():
  rng = np.random.default_rng(2)
  features, labeled = rng.normal(size=(7, 6)), rng.normal(size=(5, 6))
  predictions, labels = rng.integers(0, 3, 7), rng.integers(0, 3, 5)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  cosine = unit(features) @ unit(labeled).T
  want = [max([cosine[i, j] for j in range(5) if labels[j] == predictions[i]], default=-np.inf)
          for i in range(7)]
  for block in (2, 5, 1024):  # partial blocks, one exact block, one big block
    np.testing.assert_allclose(feature_similarity.class_similarity_scores(
        features, predictions, labeled, labels, block=block), want, rtol=1e-5)


def test_class_similarity_scores_of_padded_device_arrays_match_unpadded():
  """As a query passes them: device arrays, labeled rows padded with label -1 (ignored),
  candidate rows padded at the end (cut by the caller)."""
  import jax.numpy as jnp
  rng = np.random.default_rng(3)
  features, labeled = rng.normal(size=(9, 5)), rng.normal(size=(6, 5))
  predictions, labels = rng.integers(0, 3, 9), rng.integers(0, 3, 6)
  want = feature_similarity.class_similarity_scores(features, predictions, labeled, labels)
  padded_labeled = np.concatenate([labeled, labeled[:3]])  # padding repeats real rows
  padded_labels = np.concatenate([labels, [-1, -1, -1]])
  padded_features = np.concatenate([features, np.zeros((3, 5))])
  got = feature_similarity.class_similarity_scores(
      jnp.asarray(padded_features, jnp.float32), jnp.asarray(np.r_[predictions, 0, 0, 0]),
      jnp.asarray(padded_labeled, jnp.float32), padded_labels, block=4)
  np.testing.assert_allclose(got[:9], want, rtol=1e-6)
