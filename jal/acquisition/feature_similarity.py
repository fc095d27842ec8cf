"""SCAL's and FeatureSim's acquisition function (Krishnan et al. 2021, Sec. 3.1, Eq. 2).

Krishnan et al., "Mitigating Sampling Bias and Improving Robustness in Active
Learning" score each candidate ``x`` by its similarity to the labeled
examples of the class the task model predicts for it,

  S(x) = max over labeled x_l with y_l = y^(x) of cos(z(x_l), z(x)),     (Eq. 2)

with ``z`` the features before the last fully connected layer, and query
``budget / K`` candidates per predicted class, those with the LOWEST score:
the least typical members of each class cluster, in equal numbers per class
(App. A.4), so that the labeled pool stays balanced. SCAL uses a model trained
with the supervised contrastive loss, FeatureSim one trained with
cross-entropy; the function is the same.

Two points the paper leaves open, settled here:

- A candidate predicted as a class with no labeled example has the maximum
  over an empty set, ``-inf``: nothing labeled resembles it, so it comes
  first within its class.
- When a class has fewer candidates than its share,
  `jal.selection.per_class_lowest` gives its unused share to the other
  classes equally (water-filling); see there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jal.models.layers import l2_normalize

# Labeled examples per step of the running maximum: the similarity block is
# ``[n, LABELED_BLOCK]`` float32.
LABELED_BLOCK = 1024


@jax.jit
def _class_max_cosine(features, predictions, labeled_blocks, label_blocks):
  queries = l2_normalize(features)

  def step(best, block):
    keys, key_labels = block
    similarity = queries @ l2_normalize(keys).T
    same = predictions[:, None] == key_labels[None, :]
    return jnp.maximum(best, jnp.max(jnp.where(same, similarity, -jnp.inf), axis=1)), None

  start = jnp.full(features.shape[0], -jnp.inf, jnp.float32)
  return jax.lax.scan(step, start, (labeled_blocks, label_blocks))[0]


def class_similarity_scores(features: np.ndarray, predictions: np.ndarray,
                            labeled_features: np.ndarray, labeled_labels: np.ndarray,
                            block: int = LABELED_BLOCK) -> np.ndarray:
  """Eq. 2 of Krishnan et al. (2021): each candidate's highest cosine similarity in its class.

  Computed on the default device in float32, as a running maximum over
  blocks of ``block`` labeled examples (memory ``O(n block)``, whatever the
  labeled pool's size).

  Args:
    features: float ``[n, D]``, the candidates' features ``z(x)``.
    predictions: int ``[n]``, the task model's predicted classes.
    labeled_features: float ``[m, D]``, the labeled examples' features.
    labeled_labels: int ``[m]``, their (oracle's) labels, ``>= 0``.
    block: labeled examples per step.

  Returns:
    float32 ``[n]`` in ``[-1, 1]``, or ``-inf`` where no labeled example has
    the predicted class. A zero feature vector has similarity 0 to everything.

  Raises:
    ValueError: mismatched shapes, a negative label, or a non-finite feature.
  """
  features = np.asarray(features, np.float32)
  labeled_features = np.asarray(labeled_features, np.float32)
  predictions = np.asarray(predictions)
  labeled_labels = np.asarray(labeled_labels)
  if (features.ndim != 2 or labeled_features.ndim != 2
      or features.shape[1] != labeled_features.shape[1]
      or predictions.shape != features.shape[:1]
      or labeled_labels.shape != labeled_features.shape[:1]):
    raise ValueError(f'features {features.shape}, predictions {predictions.shape}, labeled '
                     f'features {labeled_features.shape} and labels {labeled_labels.shape} '
                     'must be [n, D], [n], [m, D], [m]')
  if labeled_labels.size and labeled_labels.min() < 0:
    raise ValueError('labeled_labels must be >= 0 (-1 is reserved for padding)')
  if not (np.isfinite(features).all() and np.isfinite(labeled_features).all()):
    raise ValueError('a feature is NaN or infinite')
  if features.shape[0] == 0:
    return np.zeros(0, np.float32)
  # Padded to whole blocks (label -1 matches no prediction): one compilation
  # per number of blocks, not per labeled-pool size.
  m = labeled_features.shape[0]
  padded = max(1, -(-m // block)) * block
  keys = np.zeros((padded, features.shape[1]), np.float32)
  keys[:m] = labeled_features
  key_labels = np.full(padded, -1, np.int32)
  key_labels[:m] = labeled_labels
  scores = _class_max_cosine(features, predictions.astype(np.int32),
                             keys.reshape(-1, block, features.shape[1]),
                             key_labels.reshape(-1, block))
  return np.asarray(scores)
