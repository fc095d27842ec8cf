"""Uncertainty sampling with the task model: max-entropy, least confidence, min-margin.

The baselines of every paper jal implements. The score is a function of the
task model's softmax (`jal.acquisition.uncertainty`); the query takes the
highest. ``score`` chooses it:

- ``'entropy'``: the predictive entropy (Shannon 1948), PAL's "Entropy";
- ``'least_confidence'``: ``1 - max_c p_c`` (Settles 2009);
- ``'margin'``: the smallest gap between the top two classes (Scheffer et
  al. 2001).

Each is also a strategy name of its own (`ALIASES`), and ``power_entropy``
is the entropy drawn by power sampling (Kirsch et al. 2023's PowerEntropy;
``config.strategy.sampling``, `jal.strategies.base`).
"""

from __future__ import annotations

import ml_collections

from jal.acquisition import uncertainty
from jal.strategies import base

SCORES = {'entropy': uncertainty.entropy, 'least_confidence': uncertainty.least_confidence,
          'margin': uncertainty.margin}
ALIASES = {name: {'score': name} for name in SCORES}
ALIASES['power_entropy'] = {'score': 'entropy', 'sampling': 'power'}


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(score='entropy'))


class Strategy(base.ScoreStrategy):
  """Queries the candidates whose ``settings.score`` is highest."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.check_choice('score', SCORES)
    self._score_fn = SCORES[self.settings.score]

  def score(self, outputs):
    return self._score_fn(outputs['classifier'])

  def score_minimum(self) -> float:
    """0, or -1 for the margin score ``-(p_(1) - p_(2))``."""
    return -1.0 if self.settings.score == 'margin' else 0.0
