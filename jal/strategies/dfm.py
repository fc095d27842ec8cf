"""DFM, Deep Feature Modeling (Krishnan et al. 2021, Sec. 3.2 and App. A.4).

On a task model trained with cross-entropy: one PCA per class of the labeled
pool's features (before the last fully connected layer), with
``config.strategy.dfm.components`` components (capped at each class's rank);
each candidate scores the feature reconstruction error through its predicted
class's subspace (Eq. 3), and the query takes the highest errors. See
`jal.acquisition.dfm` for the choices the paper leaves open.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jal.acquisition import dfm
from jal.errors import JalError
from jal.strategies import base
from jal.strategies._features import labeled_and_candidate_features


def default_config() -> ml_collections.ConfigDict:
  """Keys: ``components``, principal components kept per class (the paper gives no number)."""
  return ml_collections.ConfigDict(dict(components=16))


class Strategy(base.Strategy):
  """Queries the candidates farthest from their predicted class's PCA subspace."""

  not_for_segmentation = 'it fits a feature subspace per image class'
  ranks_by_score = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.settings.components < 1:
      raise JalError(f'config.strategy.dfm.components={self.settings.components} must be at '
                     'least 1')

  def score_minimum(self) -> float:
    """0: a reconstruction error is a norm."""
    return 0.0

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The ``budget`` candidates with the highest feature reconstruction error (Eq. 3).

    Returns:
      int64 ``[min(budget, n)]`` distinct candidates, highest error first.

    Raises:
      JalError: if a feature is NaN or infinite.
    """
    candidates, labeled = labeled_and_candidate_features(ctx)
    # The labeled pool's features come to the host for the float64 PCA; the
    # candidates' stay on the device, and only their errors come back.
    m = ctx.pool.num_labeled
    subspaces = dfm.fit_class_subspaces(np.asarray(labeled[:m]), ctx.pool.oracle_labels,
                                        self.task.num_classes, self.settings.components)
    errors = dfm.reconstruction_errors(candidates['features'], candidates['prediction'],
                                       subspaces)[:ctx.candidates.size]
    query = self.select_by_score(ctx, errors, budget)
    finite = np.isfinite(errors)
    ctx.metrics['candidate_reconstruction_error'] = float(errors[finite].mean()) \
        if finite.any() else 0.0
    picked = np.isin(ctx.candidates, query) & finite
    ctx.metrics['query_reconstruction_error'] = float(errors[picked].mean()) \
        if picked.any() else 0.0
    return query
