"""Feature passes and the feature-similarity query shared by FeatureSim, SCAL, DFM and CoreSet.

The task model's features of a query stay on the device from the forward pass
to the score (`device_pass`): only scores, predictions and the picks cross to
the host, never the ``[n, D]`` features.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jal import selection, sharding
from jal.acquisition import coreset, feature_similarity
from jal.errors import JalError
from jal.strategies import base


def features_and_predictions(outputs):
  """The pooled features ``[B, D]`` and the predicted classes ``[B]`` of a batch."""
  return {'features': outputs['features'],
          'prediction': jnp.argmax(outputs['classifier'], axis=-1).astype(jnp.int32)}


def device_pass(ctx: base.RoundContext, indices: np.ndarray, fn) -> Any:
  """``fn`` of the task model's outputs over ``images[indices]``, kept on the device.

  Every leaf is a device array whose rows are padded to
  `jal.acquisition.coreset.bucket_size` of ``len(indices)`` (the rows beyond
  ``len(indices)`` repeat real ones or are zeros), so the functions that take
  them compile a few times over a run, not once per round. With several
  processes the pass is gathered to the host and put back, replicated.

  Returns:
    The pytree of device arrays with leading axis ``bucket_size(len(indices))``.
  """
  out = ctx.task.predict(ctx.images, indices, fn, on_device=True)
  placement = sharding.replicated(ctx.mesh)

  def place(x):
    if isinstance(x, np.ndarray):  # several processes: gathered to the host
      x = jax.device_put(x, placement)
    return pad_rows(x, coreset.bucket_size(max(indices.size, x.shape[0])))
  return jax.tree.map(place, out)


@functools.partial(jax.jit, static_argnums=1)
def pad_rows(x: jax.Array, size: int) -> jax.Array:
  """``x`` then zero rows up to ``size`` (inside jit: no host constant crosses)."""
  if x.dtype == jnp.bfloat16 or x.dtype == jnp.float16:
    x = x.astype(jnp.float32)
  pad = [(0, size - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, pad) if size > x.shape[0] else x


def padded_labels(labels: np.ndarray, size: int) -> np.ndarray:
  """int32 ``[size]``: ``labels`` then -1 (a padding row, matching no class)."""
  out = np.full(size, -1, np.int32)
  out[:labels.size] = labels
  return out


def labeled_and_candidate_features(ctx: base.RoundContext):
  """``(candidates' features and predictions, labeled pool's features)``, on the device.

  The candidates' dict holds float32 ``features [n', D]`` and int32
  ``prediction [n']``; the labeled pool's features are float32 ``[m', D]``
  (``n' >= n``, ``m' >= m``: padded, `device_pass`; an empty labeled pool
  gives one zero row). Nothing crosses to the host but one finiteness flag.

  Raises:
    JalError: a feature is NaN or infinite (a diverged task model).
  """
  candidates = device_pass(ctx, ctx.candidates, features_and_predictions)
  if ctx.pool.num_labeled:
    labeled = device_pass(ctx, ctx.pool.labeled, base.features)
  else:
    labeled = jax.device_put(np.zeros((1, candidates['features'].shape[1]), np.float32),
                             sharding.replicated(ctx.mesh))
  if not bool(_all_finite(candidates['features'], labeled)):
    raise JalError(f'{ctx.config.strategy.name}: a feature of the task model is NaN or '
                   'infinite; lower config.train.learning_rate')
  return candidates, labeled


@jax.jit
def _all_finite(a, b):
  return jnp.all(jnp.isfinite(a)) & jnp.all(jnp.isfinite(b))


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
  n = ctx.candidates.size
  labels = padded_labels(np.asarray(ctx.pool.oracle_labels), labeled.shape[0])
  scores = feature_similarity.class_similarity_scores(
      candidates['features'], candidates['prediction'], labeled, labels)[:n]
  predictions = np.asarray(candidates['prediction'][:n])
  query = selection.per_class_lowest(scores, predictions, ctx.candidates, budget, num_classes)
  finite = np.isfinite(scores)
  # Means over candidates whose predicted class has a labeled example (score > -inf).
  ctx.metrics['candidate_similarity'] = float(scores[finite].mean()) if finite.any() else 0.0
  picked = np.isin(ctx.candidates, query) & finite
  ctx.metrics['query_similarity'] = float(scores[picked].mean()) if picked.any() else 0.0
  ctx.metrics['query_unseen_class'] = float(np.sum(np.isin(ctx.candidates, query) & ~finite))
  return query
