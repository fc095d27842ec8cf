"""Acquisition functions: pure functions from network outputs to scores.

Higher scores mean "query this first" unless a docstring says otherwise.
"""

from jal.acquisition.pal import classification_score, hybrid_score, self_supervision_score
from jal.acquisition.uncertainty import entropy, least_confidence, margin

__all__ = ['classification_score', 'entropy', 'hybrid_score', 'least_confidence', 'margin',
           'self_supervision_score']
