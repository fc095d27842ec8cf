"""PowerMargin: margin scores with stochastic power sampling (Kirsch et al., TMLR 2023).

Top-k acquisition of a single-point score takes the ``k`` best as if their
scores did not change once some of them are labeled, so a batch piles up on
near-duplicates. Kirsch et al.'s stochastic batch acquisition samples the
batch instead, each candidate with probability proportional to its score to
the power ``beta`` (`jal.selection.stochastic_top_k`, ``mode='power'``):
as cheap as top-k, and competitive with batch-aware methods in their
experiments.

The score is the margin uncertainty ``1 - (p_(1) - p_(2))`` of the task
model's softmax (Scheffer et al. 2001): in ``[0, 1]``, 1 when the top two
classes tie. Power sampling needs non-negative scores; this is jal's
``margin`` score (`jal.acquisition.uncertainty.margin`, ``-(p_(1) - p_(2))``)
plus one, so the two rank the candidates alike. The Gumbel noise comes from
the round's ``power_margin`` stream, so a resumed run draws the same batch.
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jal import selection
from jal.acquisition import uncertainty
from jal.errors import JalError
from jal.strategies import base


def default_config() -> ml_collections.ConfigDict:
  """Keys: ``beta``, the coldness of the power distribution (Kirsch et al.: 1)."""
  return ml_collections.ConfigDict(dict(beta=1.0))


class Strategy(base.Strategy):
  """Samples the query with probability proportional to ``(1 - margin)^beta``."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if not self.settings.beta >= 0:
      raise JalError(f'config.strategy.power_margin.beta={self.settings.beta} must be '
                     'non-negative (1 in Kirsch et al.; 0 samples uniformly)')

  def score(self, outputs):
    """``1 - (p_(1) - p_(2))``, float32 ``[B]`` in ``[0, 1]`` (segmentation: per pixel,
    reduced per image by the task)."""
    return self.task.per_image(1.0 + uncertainty.margin(outputs['classifier']))

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = ctx.task.predict(ctx.images, ctx.candidates, self.score)
    return selection.stochastic_top_k(np.maximum(scores, 0.0), ctx.candidates, budget,
                                      ctx.numpy_rng('power_margin'), mode='power',
                                      beta=self.settings.beta)
