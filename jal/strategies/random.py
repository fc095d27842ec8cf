"""Random sampling: the baseline every paper compares against."""

from __future__ import annotations

import numpy as np

from jal.strategies import base


class Strategy(base.Strategy):
  """Queries ``budget`` candidates uniformly at random (seeded per round)."""

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    k = min(budget, ctx.candidates.size)
    return ctx.numpy_rng('random_query').choice(ctx.candidates, k, replace=False).astype(np.int64)
