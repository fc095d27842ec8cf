"""BALD with MC dropout in the whole network (the SCAL paper's BALD baseline).

The mutual information between the label and the weights (Houlsby et al.
2011; Gal, Islam & Ghahramani 2017; paper 002, Eq. 8), estimated from T
stochastic passes with dropout after the convolutions of every block of the
backbone (paper 002, App. A.3: p = 0.3, T = 50). See
`jal.strategies._mc_dropout` for the sampling and its config keys.
"""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import _mc_dropout


class Strategy(_mc_dropout.MCDropoutStrategy):
  """Queries the highest `uncertainty.bald` of T passes."""

  score_samples = staticmethod(uncertainty.bald)
  last_layer = False
