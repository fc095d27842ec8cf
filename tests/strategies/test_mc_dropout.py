"""Tests of jal.strategies.mc_dropout, the Monte Carlo dropout of BALD and DBAL: dropout is on
across the samples and off in evaluation (throughout the network or before the classifier only),
the same keys give the same samples, and the models are evaluated by their predictive distribution.
"""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import dropout_net as _dropout_net, init_variables
from jal.models import ClassifierHead, MultiHeadNet, get_backbone
from jal.strategies import mc_dropout as _mc_dropout


@pytest.mark.parametrize('last_layer', [False, True])
def test_dropout_is_on_across_mc_samples_and_off_in_evaluation(last_layer):
  model = _dropout_net(last_layer)
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  variables = init_variables(model, x, seed=1, train=False)
  # Evaluation (no dropout stream) is deterministic, and equals the network
  # without dropout layers (inverted dropout: no rescaling at test time).
  plain = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  evaluated = jax.jit(lambda v: model.apply(v, x, train=False)['classifier'])(variables)
  chex.assert_trees_all_close(
      evaluated, jax.jit(lambda v: plain.apply(v, x, train=False)['classifier'])(variables))
  sampler = _mc_dropout.mc_logits_last_layer if last_layer else _mc_dropout.mc_logits
  sample = jax.jit(lambda v, x, k: sampler(model, v, x, k))
  logits = sample(variables, x, jax.random.split(jax.random.key(2), 5))
  chex.assert_shape(logits, (6, 5, 3))
  # Every pass differs from the others and from evaluation.
  for t in range(5):
    assert not np.allclose(logits[:, t], evaluated, atol=1e-4)
    for u in range(t):
      assert not np.allclose(logits[:, t], logits[:, u], atol=1e-4)
  # The same keys: the same samples.
  again = sample(variables, x, jax.random.split(jax.random.key(2), 5))
  chex.assert_trees_all_close(again, logits, atol=1e-5)


@pytest.mark.parametrize('name', ['bald', 'bald_last_layer'])
def test_mc_dropout_models_are_evaluated_by_their_predictive_distribution(name):
  from jal.strategies import base
  config = tiny_config(name, **{'strategy.mc_dropout.num_mc_samples': 4,
                                'strategy.mc_dropout.mc_batch_size': 8})
  strategy, dataset = build_strategy(config)
  trainer = strategy.trainer
  task = base.TaskModel(trainer, trainer.init(jax.random.key(0)).variables, 16)
  images = jax.device_put(dataset.test_images)
  indices = np.arange(20)
  got = strategy.predictive_log_probabilities(task, images, indices)
  deterministic = task.predict(images, indices, base.log_probabilities)
  chex.assert_shape(got, (20, dataset.num_classes))
  np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)
  if name == 'bald':  # the average of T dropout passes, not the deterministic network
    assert not np.allclose(got, deterministic, atol=1e-4)
    np.testing.assert_array_equal(got, strategy.predictive_log_probabilities(task, images,
                                                                             indices))
  else:  # dropout before the classifier only: evaluated deterministically
    np.testing.assert_array_equal(got, deterministic)
