"""Ensemble least confidence: ``1 - max_c`` of the members' mean prediction.

Beluch et al., CVPR 2018; see `jal.strategies._ensemble`.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _ensemble


def _score(outputs):
  # outputs['classifier'] holds the log of the ensemble's mean prediction.
  return uncertainty.least_confidence(outputs['classifier'])


class Strategy(_ensemble.EnsembleStrategy):
  """Queries the candidates with the highest `uncertainty.least_confidence` of the ensemble."""

  score_outputs = staticmethod(_score)
