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

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from jal.models.layers import l2_normalize

# Labeled examples per step of the running maximum: the similarity block is
# ``[n, LABELED_BLOCK]`` float32.
LABELED_BLOCK = 1024


@functools.partial(jax.jit, static_argnames='block')
def _class_max_cosine(features, predictions, labeled_features, labeled_labels, block):
  """float32 ``[n]``: Eq. 2 as a running maximum over blocks of labeled rows, padding
  (label -1) included in the last block."""
  m, dim = labeled_features.shape
  padded = max(1, -(-m // block)) * block
  keys = jnp.pad(l2_normalize(labeled_features.astype(jnp.float32)), ((0, padded - m), (0, 0)))
  key_labels = jnp.pad(labeled_labels.astype(jnp.int32), (0, padded - m), constant_values=-1)
  queries = l2_normalize(features.astype(jnp.float32))
  predictions = predictions.astype(jnp.int32)

  def step(best, block_):
    keys_, labels_ = block_
    similarity = jnp.dot(queries, keys_.T, precision=jax.lax.Precision.HIGHEST)
    same = predictions[:, None] == labels_[None, :]
    return jnp.maximum(best, jnp.max(jnp.where(same, similarity, -jnp.inf), axis=1)), None

  start = jnp.full(features.shape[0], -jnp.inf, jnp.float32)
  blocks = (keys.reshape(-1, block, dim), key_labels.reshape(-1, block))
  return jax.lax.scan(step, start, blocks)[0]


def class_similarity_scores(features: ArrayLike, predictions: ArrayLike,
                            labeled_features: ArrayLike, labeled_labels: ArrayLike,
                            block: int = LABELED_BLOCK) -> np.ndarray:
  """Eq. 2 of Krishnan et al. (2021): each candidate's highest cosine similarity in its class.

  Computed on the device in float32 (``lax.Precision.HIGHEST``: full float32
  products, never TF32 or bf16 passes), as a running maximum over blocks of
  ``block`` labeled examples (memory ``O(n block)``, whatever the labeled
  pool's size). Device arrays stay where they are (the features of a query
  never cross to the host, only the ``[n]`` scores come back); NumPy arrays
  are copied over. One compilation per shape: callers pad to a few sizes
  (`jal.strategies._features`).

  Args:
    features: float ``[n, D]``, the candidates' features ``z(x)``.
    predictions: int ``[n]``, the task model's predicted classes.
    labeled_features: float ``[m, D]``, the labeled examples' features.
    labeled_labels: int ``[m]``, their (oracle's) labels, ``>= 0``, or -1 for a
      padding row, which matches nothing.
    block: labeled examples per step.

  Returns:
    float32 ``[n]`` in ``[-1, 1]``, or ``-inf`` where no labeled example has
    the predicted class. A zero feature vector has similarity 0 to everything.

  Raises:
    ValueError: mismatched shapes, a label below -1, or a non-finite feature.
  """
  if (len(features.shape) != 2 or len(labeled_features.shape) != 2
      or features.shape[1] != labeled_features.shape[1]
      or predictions.shape != features.shape[:1]
      or labeled_labels.shape != labeled_features.shape[:1]):
    raise ValueError(f'features {features.shape}, predictions {predictions.shape}, labeled '
                     f'features {labeled_features.shape} and labels {labeled_labels.shape} '
                     'must be [n, D], [n], [m, D], [m]')
  low = np.min(labeled_labels) if isinstance(labeled_labels, np.ndarray) else \
      jnp.min(labeled_labels)
  if labeled_labels.shape[0] and int(low) < -1:
    raise ValueError('labeled_labels must be >= 0, or -1 for a padding row')
  if not bool(_all_finite(features, labeled_features)):
    raise ValueError('a feature is NaN or infinite')
  if features.shape[0] == 0:
    return np.zeros(0, np.float32)
  return np.asarray(_class_max_cosine(features, predictions, labeled_features, labeled_labels,
                                      block=block))


@jax.jit
def _all_finite(*arrays):
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in arrays]))
