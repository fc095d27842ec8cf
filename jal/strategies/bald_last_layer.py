"""BALD with MC dropout on the classifier's input only: the cheap variant.

The backbone runs once per candidate; only the classifier is sampled T times,
so a query costs about one forward pass (`bald` runs the whole network T
times). See `jal.strategies._mc_dropout`.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _mc_dropout


class Strategy(_mc_dropout.MCDropoutStrategy):
  """Queries the highest `uncertainty.bald` of T passes."""

  score_samples = staticmethod(uncertainty.bald)
  last_layer = True
