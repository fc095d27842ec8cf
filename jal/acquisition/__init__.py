"""Acquisition functions: pure functions from network outputs to scores.

Higher scores mean "query this first" unless a docstring says otherwise.
"""

from jal.acquisition.coreset import k_center_greedy
from jal.acquisition.pal import classification_score, hybrid_score, self_supervision_score
from jal.acquisition.uncertainty import (bald, entropy, least_confidence, log_mean_probabilities,
                                        margin, predictive_entropy, variation_ratio)

__all__ = ['bald', 'classification_score', 'entropy', 'hybrid_score', 'k_center_greedy',
           'least_confidence', 'log_mean_probabilities', 'margin', 'predictive_entropy',
           'self_supervision_score', 'variation_ratio']
