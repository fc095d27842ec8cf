"""DBAL with MC dropout on the classifier's input only: the cheap variant.

Max-entropy of the MC-averaged prediction, with the backbone run once per
candidate and only the classifier sampled T times. See
`jal.strategies._mc_dropout`.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _mc_dropout


class Strategy(_mc_dropout.MCDropoutStrategy):
  """Queries the highest `uncertainty.predictive_entropy` of T passes."""

  score_samples = staticmethod(uncertainty.predictive_entropy)
  last_layer = True
