"""Max-entropy sampling with the task model (the PAL paper's "Entropy" baseline)."""

from __future__ import annotations

from jal.acquisition import uncertainty
from jal.strategies import base


def _entropy_of_outputs(outputs):
  return uncertainty.entropy(outputs['classifier'])


class Strategy(base.TaskScoreStrategy):
  """Queries the candidates whose predictive entropy is highest."""

  score_outputs = staticmethod(_entropy_of_outputs)
