"""Tests of the SimCLR network of jal.initial_pools.self_supervised (Chen et al. 2020) and of the
TypiClust and ProbCover initial pools, on 16x16 digits with a width-4 network and one epoch: the
SimCLR features are deterministic, finite, compiled once and the pooled backbone output; each
pool gives distinct eligible indices deterministically; bad settings fail before any training;
a process trains a network once for its initial pool and its queries, and again for anything the
network depends on. The network is trained once per key and reused (the trained_once fixture)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import (EXCLUDED, SIZE, REAL_SCORERS as _REAL, initial_pool_config as _config,
                     recorded as _recorded, select_pool as _select)
from jal import initial_pools
from jal.data import PoolData
from jal.errors import JalError


def test_simclr_features_are_deterministic_finite_and_compiled_once(setup, trained_once):
  dataset, mesh = setup
  config = _config('kmeans', features='simclr')
  _select(config, dataset, mesh, SIZE)  # trains, if not yet
  features, key, kwargs = _recorded('simclr')
  assert features.shape == (dataset.num_train, 16) and features.dtype == np.float32  # 4 * width
  assert np.isfinite(features).all() and features.std(axis=0).max() > 0
  traces = initial_pools.TRACE_COUNTS['simclr']
  again = _REAL['simclr'](dataset.pool_data(), mesh, key=key, **kwargs)
  assert initial_pools.TRACE_COUNTS['simclr'] == traces
  np.testing.assert_array_equal(again, features)
  # What the strategies read: the same network, the same key by default.
  np.testing.assert_array_equal(
      initial_pools.self_supervised_features(config, dataset.pool_data(), mesh, 'simclr'),
      features)


@pytest.mark.parametrize('name', ['typiclust', 'probcover'])
def test_low_budget_pools_give_size_distinct_eligible_indices_deterministically(
    setup, trained_once, name):
  dataset, mesh = setup
  config = _config(name)
  chosen = _select(config, dataset, mesh, SIZE)
  assert chosen.dtype == np.int64 and chosen.shape == (SIZE,)
  assert np.all(np.diff(chosen) > 0) and chosen.max() < dataset.num_train
  assert not np.isin(dataset.train_labels[chosen], EXCLUDED).any()
  np.testing.assert_array_equal(_select(config, dataset, mesh, SIZE), chosen)


@pytest.mark.parametrize('name, key, value, match', [
    ('typiclust', 'features', 'pixels', r'config\.strategy\.typiclust\.features'),
    ('typiclust', 'num_neighbors', 0, r'config\.strategy\.typiclust\.num_neighbors=0'),
    ('probcover', 'alpha', 1.5, r'config\.strategy\.probcover\.alpha=1\.5'),
    ('probcover', 'delta', -1.0, r'config\.strategy\.probcover\.delta=-1\.0'),
])
def test_bad_low_budget_settings_fail_before_any_training(setup, name, key, value, match):
  dataset, mesh = setup
  config = _config(name)
  config.strategy[name][key] = value
  with pytest.raises(JalError, match=match):
    _select(config, dataset, mesh, SIZE)


def test_a_process_trains_a_network_once_for_the_pool_and_the_queries(setup, monkeypatch):
  """`initial_pools._TRAINED`: the same training is reused; a change to what the network reads
  trains again; the newest MAX_TRAINED are kept; callers get copies."""
  dataset, mesh = setup
  calls = []

  def fake_simclr(data, mesh, *, key, **kwargs):  # features that say which call made them
    calls.append(key)
    rng = np.random.default_rng(len(calls))
    return rng.normal(size=(data.num_train, 4)).astype(np.float32)

  monkeypatch.setattr(initial_pools, 'simclr_features', fake_simclr)
  config = _config('typiclust')
  data = dataset.pool_data()
  features = lambda c, d=data: initial_pools.self_supervised_features(c, d, mesh, 'simclr')
  _select(config, dataset, mesh, SIZE)
  first = features(config)
  assert len(calls) == 1  # the queries read the initial pool's network
  first[0, 0] = np.nan  # a copy: the remembered features are not changed
  assert np.isfinite(features(config)).all() and len(calls) == 1
  config.initial_pool.size = SIZE + 1  # not read by the network
  features(config)
  assert len(calls) == 1
  config.initial_pool.simclr.temperature = 0.25  # read by it
  features(config)
  assert len(calls) == 2
  flipped = PoolData(data.name, data.images[:, ::-1].copy(), data.class_names, data.spec)
  features(config, flipped)
  assert len(calls) == 3
  # Kept now: the first (size is not read), the 0.25 one and the flipped one; then the oldest
  # two make way for MAX_TRAINED - 1 seeds.
  for seed in range(1, initial_pools.MAX_TRAINED):
    config.seed = seed
    features(config)
  assert len(calls) == 2 + initial_pools.MAX_TRAINED
  config.seed = 0
  features(config, flipped)  # among the newest: kept
  assert len(calls) == 2 + initial_pools.MAX_TRAINED
  features(config)  # the 0.25 one: evicted, trained again
  assert len(calls) == 3 + initial_pools.MAX_TRAINED
