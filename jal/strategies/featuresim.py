"""FeatureSim (Krishnan et al. 2021, Sec. 3.1 and App. A.4).

SCAL's query (`jal.acquisition.feature_similarity`) on a task model trained
with plain cross-entropy: each candidate's score is its highest cosine
similarity to the labeled examples of its predicted class (Eq. 2), in the
features before the last fully connected layer, and the query takes the
``budget / K`` lowest-scoring candidates of each predicted class (unused
shares go to the other classes equally: `jal.selection.per_class_lowest`).
No settings. `jal.strategies.scal` is the same query on a model trained
with the supervised contrastive loss.
"""

from __future__ import annotations

import numpy as np

from jal.strategies import base
from jal.strategies._features import feature_similarity_query


class Strategy(base.Strategy):
  """Queries the least similar candidates of each predicted class (Eq. 2)."""

  not_for_segmentation = ('it compares an image with the labeled images of its '
                          'predicted class')

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    return feature_similarity_query(ctx, budget, self.task.num_classes)
