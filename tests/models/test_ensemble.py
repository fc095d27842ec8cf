"""Tests of jal.models.ensemble: the members, vectorised or not, start apart, each is the member
network with its own slice of the variables, and the prediction is the log of their averaged
probabilities."""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from helpers import init_variables, softmax as _softmax
from jal.models import ClassifierHead, Ensemble, MultiHeadNet, get_backbone


@pytest.mark.parametrize('vectorize', [False, True])
def test_ensemble_members_differ_and_the_prediction_is_their_average(vectorize):
  member = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  model = Ensemble(member, 3, vectorize=vectorize)
  x = jax.random.normal(jax.random.key(0), (5, 8, 8, 1))
  variables = init_variables(model, x, seed=1, train=False)
  kernels = variables['params']['heads_classifier']['fc']['kernel']
  chex.assert_shape(kernels, (3, 16, 3))
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])
  outputs = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
  chex.assert_shape(outputs['members'], (5, 3, 3))
  chex.assert_shape(outputs['classifier'], (5, 3))
  chex.assert_shape(outputs['features'], (5, 48))
  members = np.asarray(outputs['members'])
  assert not np.allclose(members[:, 0], members[:, 1], atol=1e-4)
  # Each member is the member network with its own slice of the variables.
  apply_member = jax.jit(lambda v: member.apply(v, x, train=False)['classifier'])
  for m in range(3):
    own = jax.tree.map(lambda v: v[m], variables)
    chex.assert_trees_all_close(apply_member(own), members[:, m], atol=1e-5)
  want = np.log(np.mean([_softmax(members[:, m]) for m in range(3)], axis=0))
  np.testing.assert_allclose(outputs['classifier'], want, atol=1e-5)
