"""Max-entropy sampling with the task model (the PAL paper's "Entropy" baseline)."""

from __future__ import annotations

import numpy as np

from jal import selection
from jal.acquisition import uncertainty
from jal.strategies import base


def _entropy_of_outputs(outputs):
  return uncertainty.entropy(outputs['classifier'])


class Strategy(base.Strategy):
  """Queries the candidates whose predictive entropy is highest."""

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = ctx.task.predict(ctx.images, ctx.candidates, _entropy_of_outputs)
    return selection.top_k(scores, ctx.candidates, budget)
