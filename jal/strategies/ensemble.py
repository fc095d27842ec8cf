"""Ensembles: M task models trained together, scored together (Beluch et al., CVPR 2018).

Beluch, Genewein, Nürnberger & Köhler, "The power of ensembles for active
learning in image classification". The task model is a `jal.models.Ensemble`
of ``num_members`` members (M = 3) that differ in their initialisation and
are trained by one compiled step on the same batches, each on its own
cross-entropy (`jal.objectives.classification.ensemble_loss`). The loop
evaluates the ensemble's averaged prediction; ``score`` reads it or the
members' votes:

- ``'variation_ratio'``: ``1 - f_m / M``, ``f_m`` the votes for the modal
  class (Eq. 1): the members' disagreement. It takes only a few values (0,
  1/3 and 2/3 for M = 3), so most candidates tie; ties are broken by the
  entropy of the members' mean prediction (higher first), then by position.
  Beluch et al. do not say how they break ties; by position alone would
  favour low indices.
- ``'entropy'``, ``'least_confidence'``, ``'margin'``: of the members' mean
  prediction.

``ensemble_varratio``, ``ensemble_entropy``, ``ensemble_least_confidence``
and ``ensemble_margin`` are the four by name (`ALIASES`).
"""

from __future__ import annotations

import ml_collections
import numpy as np

from jal.acquisition import uncertainty
from jal.errors import JalError
from jal.models import Ensemble
from jal.objectives.classification import ensemble_loss
from jal.strategies import base

# Scores of the ensemble's mean prediction (outputs['classifier'] holds its log).
MEAN_SCORES = {'entropy': uncertainty.entropy,
               'least_confidence': uncertainty.least_confidence,
               'margin': uncertainty.margin}
SCORES = ('variation_ratio', *MEAN_SCORES)
ALIASES = {'ensemble_varratio': {'score': 'variation_ratio'},
           **{f'ensemble_{name}': {'score': name} for name in MEAN_SCORES}}


def default_config() -> ml_collections.ConfigDict:
  """Keys: ``num_members`` (M, 3 in Beluch et al.), ``score`` (see the module docstring)."""
  return ml_collections.ConfigDict(dict(num_members=3, score='variation_ratio'))


class Strategy(base.Strategy):
  """Queries the highest ``score`` of an ensemble of M task models."""

  not_for_segmentation = ('its members predict one class per image ([B, M, K]); no paper '
                          'has it on segmentation')
  ranks_by_score = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.check_choice('score', SCORES)

  def task_spec(self) -> base.TaskSpec:
    if self.settings.num_members < 2:
      raise JalError(f'config.strategy.ensemble.num_members={self.settings.num_members} must be '
                     'at least 2 for an ensemble')
    return base.TaskSpec(Ensemble(self.task_model(), self.settings.num_members), ensemble_loss)

  def scores(self, outputs):
    """The ensemble's scores of a batch: ``score`` and the tie-breaking entropy."""
    if self.settings.score == 'variation_ratio':
      return {'score': uncertainty.variation_ratio(outputs['members']),
              'tie_break': uncertainty.entropy(outputs['classifier'])}
    return {'score': MEAN_SCORES[self.settings.score](outputs['classifier'])}

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = ctx.task.predict(ctx.images, ctx.candidates, self.scores)
    return self.select_by_score(ctx, scores['score'], budget, tie_break=scores.get('tie_break'))

  def score_minimum(self) -> float:
    """0, or -1 for the margin score."""
    return -1.0 if self.settings.score == 'margin' else 0.0
