"""Acquisition functions: pure functions from network outputs to scores.

Higher scores mean "query this first" unless a docstring says otherwise.
"""

from jal.acquisition.pal import classification_score, hybrid_score, self_supervision_score
from jal.acquisition.uncertainty import entropy

__all__ = ['classification_score', 'entropy', 'hybrid_score', 'self_supervision_score']
