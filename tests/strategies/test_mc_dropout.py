"""Tests of jal.strategies.mc_dropout, the Monte Carlo dropout of BALD and DBAL: dropout is on
across the samples and off in evaluation (throughout the network or before the classifier only),
the same keys give the same samples, the models are evaluated by their predictive distribution,
and the placement of the dropout resolves and refuses bad settings in one line.
"""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import dropout_net as _dropout_net, init_variables
from jal.errors import JalError
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


@pytest.mark.parametrize('name, overrides, passes', [
    ('bald', {'strategy.mc_dropout.dropout': 'backbone'}, True),
    ('bald', {'model.name': 'dbal_cnn'}, True),  # auto: the network's own dropout
    ('bald_last_layer', {}, False),
])
def test_mc_dropout_models_are_evaluated_by_their_predictive_distribution(name, overrides, passes):
  from jal.strategies import base
  config = tiny_config(name, **{'strategy.mc_dropout.num_mc_samples': 4,
                                'strategy.mc_dropout.mc_batch_size': 8, **overrides})
  strategy, dataset = build_strategy(config)
  assert strategy.last_layer is not passes
  trainer = strategy.trainer
  task = base.TaskModel(trainer, trainer.init(jax.random.key(0)).variables, 16)
  images = jax.device_put(dataset.test_images)
  indices = np.arange(20)
  got = strategy.predictive_log_probabilities(task, images, indices)
  deterministic = task.predict(images, indices, base.log_probabilities)
  chex.assert_shape(got, (20, dataset.num_classes))
  np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)
  if passes:  # the average of T dropout passes, not the deterministic network
    assert not np.allclose(got, deterministic, atol=1e-4)
    np.testing.assert_array_equal(got, strategy.predictive_log_probabilities(task, images,
                                                                             indices))
  else:  # dropout before the classifier only: evaluated deterministically
    np.testing.assert_array_equal(got, deterministic)


def _section(**keys):
  section = _mc_dropout.default_config()
  section.update(keys)
  return section


def test_placement_auto_is_the_networks_own_dropout_else_the_last_layer():
  resolve = _mc_dropout.resolve_placement
  assert resolve(_section(), 'dbal_cnn', segmentation=False) == 'network'
  assert resolve(_section(), 'small_cnn', segmentation=False) == 'last_layer'
  assert resolve(_section(), 'resnet18', segmentation=False) == 'last_layer'
  assert resolve(_section(), 'small_fcn', segmentation=True) == 'backbone'
  for where in ('network', 'backbone', 'last_layer'):
    assert resolve(_section(dropout=where), 'dbal_cnn', segmentation=False) == where
  assert _mc_dropout.ALIASES['bald_last_layer'] == {'score': 'bald', 'dropout': 'last_layer'}


@pytest.mark.parametrize('keys, backbone, segmentation, message', [
    ({'dropout': 'everywhere'}, 'small_cnn', False,
     "dropout='everywhere' is not a placement; use one of auto, network, backbone, last_layer"),
    ({'dropout': 'network'}, 'small_cnn', False,
     "'small_cnn' has no dropout of its own .those with: dbal_cnn.; use last_layer or backbone"),
    ({'dropout': 'last_layer'}, 'small_fcn', True, 'per-pixel head'),
    ({'last_layer': True}, 'small_cnn', False,
     'last_layer was replaced by config.strategy.mc_dropout.dropout: use '
     '--config.strategy.mc_dropout.dropout=last_layer'),
    ({'last_layer': False}, 'small_cnn', False, '=backbone for last_layer=False'),
])
def test_placement_refuses_bad_settings_in_one_line(keys, backbone, segmentation, message):
  with pytest.raises(JalError, match=message) as info:
    _mc_dropout.resolve_placement(_section(**keys), backbone, segmentation)
  assert '\n' not in str(info.value)


def test_the_replaced_key_is_refused_as_the_strategy_is_built():
  config = tiny_config('bald', **{'strategy.mc_dropout.last_layer': True})
  with pytest.raises(JalError, match=r"^bald: config.strategy.mc_dropout.last_layer was replaced"):
    build_strategy(config)
