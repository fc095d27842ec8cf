"""Least-confidence sampling with the task model (Settles 2009)."""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import base


def _least_confidence_of_outputs(outputs):
  return uncertainty.least_confidence(outputs['classifier'])


class Strategy(base.TaskScoreStrategy):
  """Queries the candidates whose most probable class is least probable."""

  score_outputs = staticmethod(_least_confidence_of_outputs)
