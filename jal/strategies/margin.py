"""Min-margin sampling with the task model (Scheffer et al. 2001)."""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import base


def _margin_of_outputs(outputs):
  return uncertainty.margin(outputs['classifier'])


class Strategy(base.TaskScoreStrategy):
  """Queries the candidates with the smallest gap between the top two classes."""

  score_outputs = staticmethod(_margin_of_outputs)
