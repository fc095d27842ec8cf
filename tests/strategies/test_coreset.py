"""Tests of jal.strategies.coreset: on a fixed table of features the strategy queries the reference
k-center greedy picks among the round's candidates, clips to the candidates and refuses NaN
features; one round runs through the experiment loop with no implicit transfer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import (MIN_RELATIVE_GAP, TableTask, one_query_without_transfers,
                     reference_k_center_greedy, table_context)
from jal import sharding
from jal.errors import JalError
from jal.pool import Pool
from jal.acquisition import coreset


def test_strategy_queries_the_reference_picks_among_candidates():
  rng = np.random.default_rng(8)
  features = rng.standard_normal((100, 12)).astype(np.float32)
  labeled = rng.choice(100, 10, replace=False)
  candidates = np.setdiff1d(np.arange(100), labeled)[::2]  # a candidate subset
  config = tiny_config('coreset')
  mesh = sharding.make_mesh()
  strategy, dataset = build_strategy(config, mesh=mesh)
  ctx = table_context(config, dataset.pool_data(), TableTask(features=features), candidates,
                      labeled, 100, mesh=mesh)
  query = strategy.query(ctx, 15)
  expected, gap = reference_k_center_greedy(features[candidates], features[labeled], 15)
  assert gap > MIN_RELATIVE_GAP
  assert query.dtype == np.int64
  np.testing.assert_array_equal(query, candidates[expected])
  assert strategy.query(ctx, 1000).size == candidates.size  # clipped to the candidates
  # Later rounds (fewer candidates, more labeled) within the same size buckets compile
  # the greedy once: the counts are traced, the arrays padded.
  before = coreset.k_center_greedy._cache_size()  # pylint: disable=protected-access
  for extra in range(1, 4):
    later = dataclasses.replace(ctx, candidates=candidates[extra:],
                                pool=Pool(100, np.concatenate([labeled, candidates[:extra]]),
                                          np.zeros(10 + extra, np.int32)))
    expected, _ = reference_k_center_greedy(features[candidates[extra:]],
                                            features[later.pool.labeled], 15)
    np.testing.assert_array_equal(strategy.query(later, 15), candidates[extra:][expected])
  assert coreset.k_center_greedy._cache_size() == before  # pylint: disable=protected-access
  features[candidates[3], 0] = np.nan
  with pytest.raises(JalError, match='NaN'):
    strategy.query(ctx, 15)


def test_one_round_through_the_experiment_loop(tmp_path):
  """Features go to the device explicitly: no implicit transfer in the round."""
  one_query_without_transfers('coreset', str(tmp_path / 'run'))
