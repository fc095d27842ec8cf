"""Ensemble variation ratio (Beluch et al., CVPR 2018, Eq. 1).

``1 - f_m / M``, ``f_m`` the number of members voting for the modal class: the
members' disagreement. It takes only a few values (0, 1/3 and 2/3 for M = 3),
so most candidates tie; ties are broken by the entropy of the members' mean
prediction (higher first), then by position. Beluch et al. do not say how they
break ties; breaking them by position alone would favour low indices. See
`jal.strategies._ensemble`.
"""

from __future__ import annotations

import numpy as np

from jal import selection
from jal.acquisition import uncertainty
from jal.strategies import _ensemble, base


def _scores(outputs):
  return {'variation_ratio': uncertainty.variation_ratio(outputs['members']),
          'entropy': uncertainty.entropy(outputs['classifier'])}


class Strategy(_ensemble.EnsembleStrategy):
  """Queries the highest variation ratio, ties broken by the ensemble's entropy."""

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = ctx.task.predict(ctx.images, ctx.candidates, _scores)
    return selection.top_k(scores['variation_ratio'], ctx.candidates, budget,
                           tie_break=scores['entropy'])
