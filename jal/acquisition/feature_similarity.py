"""SCAL's and FeatureSim's acquisition function (paper 002, Sec. 3.1, Eq. 2).

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
- When a class has fewer candidates than its share, `per_class_lowest`
  gives its unused share to the other classes equally (water-filling); see
  there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jal import selection

# Labeled examples per step of the running maximum: the similarity block is
# ``[n, LABELED_BLOCK]`` float32.
LABELED_BLOCK = 1024


def _unit(x: jax.Array) -> jax.Array:
  x = x.astype(jnp.float32)
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


@jax.jit
def _class_max_cosine(features, predictions, labeled_blocks, label_blocks):
  queries = _unit(features)

  def step(best, block):
    keys, key_labels = block
    similarity = queries @ _unit(keys).T
    same = predictions[:, None] == key_labels[None, :]
    return jnp.maximum(best, jnp.max(jnp.where(same, similarity, -jnp.inf), axis=1)), None

  start = jnp.full(features.shape[0], -jnp.inf, jnp.float32)
  return jax.lax.scan(step, start, (labeled_blocks, label_blocks))[0]


def class_similarity_scores(features: np.ndarray, predictions: np.ndarray,
                            labeled_features: np.ndarray, labeled_labels: np.ndarray,
                            block: int = LABELED_BLOCK) -> np.ndarray:
  """Eq. 2 of paper 002: each candidate's highest cosine similarity within its predicted class.

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


def per_class_lowest(scores: np.ndarray, predictions: np.ndarray, candidates: np.ndarray,
                     budget: int, num_classes: int) -> np.ndarray:
  """SCAL's selection (paper 002, App. A.4): ``budget / K`` lowest scores per predicted class.

  Shares are equal across the ``K = num_classes`` classes, by water-filling:
  the largest level ``L`` with ``sum_k min(n_k, L) <= budget`` (``n_k`` the
  candidates predicted ``k``) takes the ``L`` lowest-scoring candidates of
  every class (all of a class with ``n_k <= L``), so a class with too few
  candidates gives what it cannot use to every other class equally. The
  ``R < K`` picks still owed then go one each to the classes whose next
  candidate in line has the lowest score. With enough candidates in every
  class this is ``budget // K`` per class plus one for ``budget % K`` classes.
  Ties go to the candidate listed first, and between classes to the lower class.

  Args:
    scores: float ``[n]``; lower is queried first (``-inf`` allowed).
    predictions: int ``[n]`` in ``[0, num_classes)``.
    candidates: int ``[n]``, pool indices.
    budget: how many to select (clipped to ``n``).
    num_classes: ``K``.

  Returns:
    int64 ``[min(budget, n)]`` distinct candidates, sorted by score
    (lowest first).

  Raises:
    ValueError: mismatched shapes, a NaN score or a prediction out of range.
  """
  scores = np.asarray(scores, np.float64)
  predictions = np.asarray(predictions)
  candidates = np.asarray(candidates, np.int64)
  if scores.shape != candidates.shape or predictions.shape != candidates.shape:
    raise ValueError(f'{scores.shape} scores and {predictions.shape} predictions for '
                     f'{candidates.shape} candidates')
  if np.isnan(scores).any():
    raise ValueError('a score is NaN')
  if predictions.size and not 0 <= predictions.min() <= predictions.max() < num_classes:
    raise ValueError(f'predictions must be in [0, {num_classes})')
  k = min(int(budget), candidates.size)
  position = np.arange(candidates.size)
  # Within each class, candidates by ascending score (ties: listed first).
  order = np.lexsort((position, scores, predictions))
  counts = np.bincount(predictions, minlength=num_classes)
  starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
  rank = np.empty(candidates.size, np.int64)
  rank[order] = position - np.repeat(starts, counts)  # rank within its class
  level = selection.water_level(counts, k)
  chosen = rank < level
  owed = k - int(chosen.sum())
  if owed:
    next_in_line = np.flatnonzero(rank == level)
    by_score = np.lexsort((predictions[next_in_line], scores[next_in_line]))
    chosen[next_in_line[by_score[:owed]]] = True
  picked = np.flatnonzero(chosen)
  return candidates[picked[np.lexsort((picked, scores[picked]))]]

