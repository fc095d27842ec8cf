"""Feature extraction and the feature-similarity query shared by FeatureSim, SCAL and DFM."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jal import selection
from jal.acquisition import feature_similarity
from jal.errors import JalError
from jal.strategies import base


def features_and_predictions(outputs):
  """The pooled features ``[B, D]`` and the predicted classes ``[B]`` of a batch."""
  return {'features': outputs['features'],
          'prediction': jnp.argmax(outputs['classifier'], axis=-1).astype(jnp.int32)}


def labeled_and_candidate_features(ctx: base.RoundContext):
  """``(candidates' features and predictions, labeled pool's features)``, checked finite.

  Raises:
    JalError: a feature is NaN or infinite (a diverged task model).
  """
  candidates = ctx.task.predict(ctx.images, ctx.candidates, features_and_predictions)
  if ctx.pool.num_labeled:
    labeled = np.asarray(ctx.task.predict(ctx.images, ctx.pool.labeled, base.features))
  else:
    labeled = np.zeros((0, candidates['features'].shape[1]), np.float32)
  if not (np.isfinite(candidates['features']).all() and np.isfinite(labeled).all()):
    raise JalError(f'{ctx.config.strategy.name}: a feature of the task model is NaN or '
                   'infinite; lower config.train.learning_rate')
  return candidates, labeled


def feature_similarity_query(ctx: base.RoundContext, budget: int, num_classes: int) -> np.ndarray:
  """The ``budget / K`` candidates of each predicted class least like its labeled examples.

  SCAL's and FeatureSim's query (Krishnan et al. 2021, Eq. 2 with
  `jal.selection.per_class_lowest`). Writes the candidates' and the query's
  mean similarity, and how many queried candidates are predicted as a class
  with nothing labeled, to ``ctx.metrics``.

  Returns:
    int64 ``[min(budget, n)]`` distinct candidates, lowest score first.

  Raises:
    JalError: if a feature is NaN or infinite.
  """
  candidates, labeled = labeled_and_candidate_features(ctx)
  scores = feature_similarity.class_similarity_scores(
      candidates['features'], candidates['prediction'], labeled, ctx.pool.oracle_labels)
  query = selection.per_class_lowest(scores, candidates['prediction'], ctx.candidates, budget,
                                     num_classes)
  finite = np.isfinite(scores)
  # Means over candidates whose predicted class has a labeled example (score > -inf).
  ctx.metrics['candidate_similarity'] = float(scores[finite].mean()) if finite.any() else 0.0
  picked = np.isin(ctx.candidates, query) & finite
  ctx.metrics['query_similarity'] = float(scores[picked].mean()) if picked.any() else 0.0
  ctx.metrics['query_unseen_class'] = float(np.sum(np.isin(ctx.candidates, query) & ~finite))
  return query
