"""FeatureSim (Krishnan et al., paper 002, Sec. 3.1 and App. A.4).

SCAL's query (`jal.acquisition.feature_similarity`) on a task model trained
with plain cross-entropy: each candidate's score is its highest cosine
similarity to the labeled examples of its predicted class (Eq. 2), in the
features before the last fully connected layer, and the query takes the
``budget / K`` lowest-scoring candidates of each predicted class (unused
shares go to the other classes equally: `feature_similarity.per_class_lowest`).
No config keys. `jal.strategies.scal` is the same query on a model trained
with the supervised contrastive loss.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jal.acquisition import feature_similarity
from jal.errors import JalError
from jal.strategies import base


def features_and_predictions(outputs):
  """The pooled features ``[B, D]`` and the predicted classes ``[B]`` of a batch."""
  return {'features': outputs['features'],
          'prediction': jnp.argmax(outputs['classifier'], axis=-1).astype(jnp.int32)}


def features_of(outputs):
  """The pooled features ``[B, D]`` (before the last fully connected layer)."""
  return outputs['features']


def labeled_and_candidate_features(ctx: base.RoundContext):
  """``(candidates' features and predictions, labeled pool's features)``, checked finite.

  Raises:
    JalError: a feature is NaN or infinite (a diverged task model).
  """
  candidates = ctx.task.predict(ctx.images, ctx.candidates, features_and_predictions)
  if ctx.pool.num_labeled:
    labeled = np.asarray(ctx.task.predict(ctx.images, ctx.pool.labeled, features_of))
  else:
    labeled = np.zeros((0, candidates['features'].shape[1]), np.float32)
  if not (np.isfinite(candidates['features']).all() and np.isfinite(labeled).all()):
    raise JalError(f'{ctx.config.strategy.name}: a feature of the task model is NaN or '
                   'infinite; lower config.train.learning_rate')
  return candidates, labeled


class Strategy(base.Strategy):
  """Queries the least similar candidates of each predicted class (Eq. 2 of paper 002)."""

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The ``budget / K`` candidates of each predicted class least like its labeled examples.

    Returns:
      int64 ``[min(budget, n)]`` distinct candidates, lowest score first.

    Raises:
      JalError: if a feature is NaN or infinite.
    """
    candidates, labeled = labeled_and_candidate_features(ctx)
    scores = feature_similarity.class_similarity_scores(
        candidates['features'], candidates['prediction'], labeled, ctx.pool.oracle_labels)
    query = feature_similarity.per_class_lowest(scores, candidates['prediction'], ctx.candidates,
                                                budget, self.dataset.num_classes)
    finite = np.isfinite(scores)
    # Means over candidates whose predicted class has a labeled example (score > -inf).
    ctx.metrics['candidate_similarity'] = float(scores[finite].mean()) if finite.any() else 0.0
    picked = np.isin(ctx.candidates, query) & finite
    ctx.metrics['query_similarity'] = float(scores[picked].mean()) if picked.any() else 0.0
    ctx.metrics['query_unseen_class'] = float(np.sum(np.isin(ctx.candidates, query) & ~finite))
    return query
