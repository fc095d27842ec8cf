"""Tests of jal.strategies.mal, MAL (Ebrahimi et al. 2020) as a strategy: the task model starts
from the trained encoder but not from its classifier (Algorithm 3), and bad hyperparameters give
one-line errors."""

from __future__ import annotations

import os

import jax
import numpy as np
import pytest

from conftest import adversarial_config, build_strategy
from jal import experiment
from jal.errors import JalError
from jal.pool import Pool


def test_mal_task_model_starts_from_the_trained_encoder():
  config = adversarial_config('mal', **{'train.epochs': 0})
  strategy, dataset = build_strategy(config)
  trainer = strategy.trainer
  images = jax.device_put(dataset.train_images)
  labels = np.full(dataset.num_train, -1, np.int32)
  labels[:40] = dataset.train_labels[:40]
  pool = Pool(dataset.num_train, np.arange(40), labels[:40])
  fresh = trainer.init(jax.random.key(0))
  fresh_head = jax.device_get(fresh.params['heads_classifier'])
  fitted = strategy.fit(fresh, images, jax.device_put(labels), pool, key=jax.random.key(1),
                        description='t')
  state, metrics = fitted.state, fitted.metrics
  encoder = fitted.aux['network']  # handed to the query explicitly
  chex_equal = lambda a, b: jax.tree.map(np.testing.assert_array_equal, jax.device_get(a),
                                         jax.device_get(b))
  chex_equal(state.params['backbone'], encoder['params']['backbone'])
  chex_equal(state.batch_stats['backbone'], encoder['batch_stats']['backbone'])
  chex_equal(state.params['heads_classifier'], fresh_head)  # C is not copied (Algorithm 3)
  assert metrics['mal_discriminator_loss'] > 0 and 'mal_entropy' in metrics


@pytest.mark.parametrize('overrides,message', [
    ({'strategy.mal.selection': 'product'}, "selection='product' is unknown"),
    ({'strategy.mal.temperature': 0.0}, 'temperature=0.0 must be positive'),
])
def test_bad_mal_hyperparameters_give_one_line_errors(tmp_path, overrides, message):
  with pytest.raises(JalError, match=message):
    experiment.run(adversarial_config('mal', **overrides), str(tmp_path))
  assert os.listdir(tmp_path) == []  # nothing written
