"""Ensemble entropy: the entropy of the members' mean prediction, highest first.

Beluch et al., CVPR 2018; see `jal.strategies._ensemble`.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _ensemble


def _score(outputs):
  # outputs['classifier'] holds the log of the ensemble's mean prediction.
  return uncertainty.entropy(outputs['classifier'])


class Strategy(_ensemble.EnsembleStrategy):
  """Queries the candidates with the highest `uncertainty.entropy` of the ensemble."""

  score_outputs = staticmethod(_score)
