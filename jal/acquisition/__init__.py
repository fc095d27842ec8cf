"""Acquisition functions: pure functions from network outputs to scores.

Higher scores mean "query this first" unless a docstring says otherwise
(SCAL's and FeatureSim's `class_similarity_scores`: the lowest first). The
rules that turn scores into a query are in `jal.selection`.
"""

from jal.acquisition.coreset import k_center_greedy
from jal.acquisition.dfm import ClassSubspaces, fit_class_subspaces, reconstruction_errors
from jal.acquisition.feature_similarity import class_similarity_scores
from jal.acquisition.pretext import classification_score, hybrid_score, self_supervision_score
from jal.acquisition.uncertainty import (bald, entropy, least_confidence, log_mean_probabilities,
                                        margin, predictive_entropy, variation_ratio)

__all__ = ['ClassSubspaces', 'bald', 'class_similarity_scores', 'classification_score', 'entropy',
           'fit_class_subspaces', 'hybrid_score', 'k_center_greedy', 'least_confidence',
           'log_mean_probabilities', 'margin', 'predictive_entropy', 'reconstruction_errors',
           'self_supervision_score', 'variation_ratio']
