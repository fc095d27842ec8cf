"""Tests of jal.strategies.batchbald: the candidates' MC probabilities use the same dropout masks
for every image (an image scores alike wherever it sits in the pool), a query is distinct, sized,
repeatable and has BALD's argmax first, and bad settings are refused in one line."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from jal.acquisition import batchbald as acquisition
from jal.errors import JalError
from jal.pool import Pool
from jal.strategies import base

SETTINGS = {'strategy.batchbald.num_mc_samples': 4, 'strategy.batchbald.mc_batch_size': 8,
            'strategy.batchbald.max_configurations': 4}


@pytest.fixture(scope='module')
def strategy_and_data():
  return build_strategy(tiny_config('batchbald', **SETTINGS))


def _ctx(strategy, dataset, images, candidates, round_=0):
  trainer = strategy.trainer
  task = base.TaskModel(trainer, trainer.init(jax.random.key(0)).variables, 16)
  pool = Pool(num_train=images.shape[0], labeled=np.array([0], np.int64),
              oracle_labels=np.zeros(1, np.int32))
  return base.RoundContext(config=strategy.config, data=dataset.pool_data(), round=round_,
                           pool=pool, images=images, labels=None, candidates=candidates,
                           task=task, mesh=strategy.mesh)


def test_an_image_gets_the_same_samples_wherever_it_is_and_the_query_is_batchbald(
    strategy_and_data):
  strategy, dataset = strategy_and_data
  # Images 0..23, then copies of images 3 and 5 in another chunk and position.
  base_images = np.asarray(dataset.test_images[:24])
  images = jax.device_put(np.concatenate([base_images, base_images[[5, 3]]]))
  candidates = np.arange(1, 26)
  ctx = _ctx(strategy, dataset, images, candidates)
  probs = np.asarray(strategy.probabilities(ctx, candidates))[:25]
  assert probs.shape == (25, 4, dataset.num_classes)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
  np.testing.assert_allclose(probs[23], probs[4], atol=1e-6)  # image 5, two chunks apart
  np.testing.assert_allclose(probs[24], probs[2], atol=1e-6)  # image 3
  assert not np.allclose(probs[:, 0], probs[:, 1], atol=1e-4)  # the samples differ

  # 6 picks with C = 10 and 4 configurations: the first exact (BALD), then sampled.
  query = strategy.query(ctx, 6)
  assert query.dtype == np.int64 and np.unique(query).size == 6
  assert set(query) <= set(candidates)
  bald = np.asarray(jax.jit(acquisition.bald_scores)(probs))
  assert query[0] == candidates[np.argmax(bald)]
  assert ctx.scores.shape == (6,) and ctx.metrics['batchbald'] == pytest.approx(
      ctx.scores.sum(), abs=1e-5)
  np.testing.assert_array_equal(query, strategy.query(_ctx(strategy, dataset, images,
                                                           candidates), 6))


def test_bad_settings_and_segmentation_are_refused_in_one_line():
  with pytest.raises(JalError, match="score='dbal' must be 'bald'") as info:
    build_strategy(tiny_config('batchbald', **SETTINGS, **{'strategy.batchbald.score': 'dbal'}))
  assert '\n' not in str(info.value)
  with pytest.raises(JalError, match='max_configurations=2 must be at least num_mc_samples=4'):
    build_strategy(tiny_config('batchbald', **{**SETTINGS,
                                               'strategy.batchbald.max_configurations': 2}))
  # The settings it shares with MC dropout are refused under its own section's name.
  with pytest.raises(JalError, match=r"config\.strategy\.batchbald\.dropout='sideways' is not"):
    build_strategy(tiny_config('batchbald', **{**SETTINGS, 'strategy.batchbald.dropout': 'sideways'}))
  with pytest.raises(JalError, match=r'config\.strategy\.batchbald\.dropout_rate=1\.5 must'):
    build_strategy(tiny_config('batchbald', **{**SETTINGS, 'strategy.batchbald.dropout_rate': 1.5}))
