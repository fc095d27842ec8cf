"""Learning Loss with the paper's margin ranking loss (Yoo & Kweon 2019, Eq. 2).

See `jal.strategies._learning_loss`.
"""

from __future__ import annotations

from jal.strategies import _learning_loss


class Strategy(_learning_loss.LearningLossStrategy):
  """Queries the highest loss predicted by a module trained with the margin loss."""

  ranking = 'margin'
