"""DBAL: max-entropy of the MC-averaged prediction (Gal, Islam & Ghahramani 2017).

The entropy of ``(1/T) sum_t p_t`` over T stochastic passes with dropout after
the convolutions of every block of the backbone (as `bald`). See
`jal.strategies._mc_dropout` for the sampling and its config keys.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _mc_dropout


class Strategy(_mc_dropout.MCDropoutStrategy):
  """Queries the highest `uncertainty.predictive_entropy` of T passes."""

  score_samples = staticmethod(uncertainty.predictive_entropy)
  last_layer = False
