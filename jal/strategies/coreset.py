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
`jal.acquisition.coreset.k_center_greedy`, in O(n d) memory. The features
never leave the device (only the picks do), and the candidates' and labeled
pool's features are padded to a few sizes (`coreset.bucket_size`), so the
greedy compiles a few times over a run instead of once per round. No
settings.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jal import sharding
from jal.acquisition import coreset
from jal.errors import JalError
from jal.strategies import _features, base


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
    n, m = ctx.candidates.size, ctx.pool.labeled.size
    points = _features.device_pass(ctx, ctx.candidates, base.features)
    if m:
      centers = _features.device_pass(ctx, ctx.pool.labeled, base.features)
    else:
      centers = np.zeros((coreset.bucket_size(1), points.shape[1]), np.float32)
    replicated = sharding.replicated(ctx.mesh)
    centers, counts = jax.device_put((centers, (np.int32(n), np.int32(m))), replicated)
    if not bool(_all_finite(points, centers, *counts)):
      raise JalError('coreset: a penultimate feature of the task model is NaN or infinite; '
                     'lower config.train.learning_rate')
    picks = coreset.k_center_greedy(points, centers, k, *counts)
    return np.asarray(ctx.candidates, np.int64)[jax.device_get(picks)]


@jax.jit
def _all_finite(points, centers, n, m):
  """Whether the real rows (``[:n]``, ``[:m]``) are finite (padding is zeros)."""
  def finite(x, count):
    return jnp.all(jnp.isfinite(x).all(axis=1) | (jnp.arange(x.shape[0]) >= count))
  return finite(points, n) & finite(centers, m)
