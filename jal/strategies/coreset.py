"""CoreSet: k-center greedy on the task model's features (Sener & Savarese 2018).

"Active Learning for Convolutional Neural Networks: A Core-Set Approach"
(ICLR 2018) queries a core set: the ``budget`` candidates that, added to the
labeled pool, cover the candidates best, i.e. minimise the largest distance
from a candidate to its nearest labeled-or-queried example. This is the
greedy variant (their Algorithm 1, a 2-approximation of that k-center
problem), as in the SCAL paper's CoreSet baseline and google/active-learning's
``kcenter_greedy.py``; the paper's robust k-center, a mixed integer program
that tolerates outliers (Sec. 4.3), is not implemented.

Distances are Euclidean between the task model's penultimate features (the
pooled backbone output, ``outputs['features']``), as in the SCAL paper
(Krishnan et al. 2021, App. A.4). The greedy runs on the device,
`jal.acquisition.coreset.k_center_greedy`, in O(n d) memory. No settings.
"""

from __future__ import annotations

import jax
import numpy as np

from jal import sharding
from jal.acquisition import coreset
from jal.errors import JalError
from jal.strategies import base


class Strategy(base.Strategy):
  """Queries the candidates picked by k-center greedy from the labeled pool."""

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The first ``min(budget, n)`` k-center greedy picks among the candidates.

    Returns:
      int64 ``[min(budget, n)]``: distinct candidates, in the order picked.

    Raises:
      JalError: if a feature is NaN or infinite (a diverged task model).
    """
    k = min(budget, ctx.candidates.size)
    if k == 0:
      return np.zeros(0, np.int64)
    points = np.asarray(ctx.task.predict(ctx.images, ctx.candidates, base.features),
                        np.float32)
    if ctx.pool.labeled.size:
      centers = np.asarray(ctx.task.predict(ctx.images, ctx.pool.labeled, base.features),
                           np.float32)
    else:
      centers = np.zeros((0, points.shape[1]), np.float32)
    if not (np.isfinite(points).all() and np.isfinite(centers).all()):
      raise JalError('coreset: a penultimate feature of the task model is NaN or infinite; '
                     'lower config.train.learning_rate')
    replicated = sharding.replicated(ctx.mesh)
    picks = coreset.k_center_greedy(jax.device_put(points, replicated),
                                    jax.device_put(centers, replicated), k)
    return np.asarray(ctx.candidates, np.int64)[jax.device_get(picks)]
