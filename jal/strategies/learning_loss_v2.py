"""Learning Loss with TA-VAAL's pairwise ranking loss (Kim et al. 2021, paper 004, Eq. 1).

The same module and schedule as `learning_loss`; the ranking loss is the
binary cross-entropy of each pair's order instead of a hinge. See
`jal.strategies._learning_loss`.
"""

from __future__ import annotations

from jal.strategies import _learning_loss


class Strategy(_learning_loss.LearningLossStrategy):
  """Queries the highest loss predicted by a module trained with the pairwise loss."""

  ranking = 'pairwise'
