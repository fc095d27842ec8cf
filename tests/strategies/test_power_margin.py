"""Tests of jal.strategies.power_margin: margin scores sampled by power acquisition.

The score against a NumPy reference, the sampling distribution against
Kirsch et al.'s (2023) ``p_i ∝ s_i^beta``, its limits (``beta`` large: the
margin's top-k; ``beta = 0``: uniform), determinism per seed and round, and
one round through the experiment loop.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import TableTask, table_context
from jal import experiment, selection
from jal.errors import JalError


def _numpy_score(logits):
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  top = np.sort(p, -1)[:, ::-1]
  return 1.0 - (top[:, 0] - top[:, 1])


@pytest.fixture(scope='module')
def strategy_and_data():
  return build_strategy(tiny_config('power_margin'))


def _ctx(config, data, logits, round_=0):
  """Round ``round_`` with every row of ``logits`` a candidate (one more example labeled)."""
  n = logits.shape[0]
  return table_context(config, data, TableTask(classifier=logits), np.arange(n), [n], n + 1,
                       round_)


def test_the_score_is_one_minus_the_margin(strategy_and_data):
  strategy, _ = strategy_and_data
  logits = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * 3
  got = np.asarray(strategy.score({'classifier': jnp.asarray(logits)}))
  np.testing.assert_allclose(got, _numpy_score(logits), rtol=1e-5, atol=1e-6)
  assert (got >= 0).all() and (got <= 1).all()


def test_the_first_pick_follows_the_power_distribution(strategy_and_data):
  strategy, dataset = strategy_and_data
  # Two classes: margins 1 - |2p - 1| give scores 0.2, 0.4, 0.6, 1.0.
  p = np.array([0.9, 0.8, 0.7, 0.5])
  logits = np.log(np.stack([p, 1 - p], -1))
  scores = _numpy_score(logits)
  np.testing.assert_allclose(scores, [0.2, 0.4, 0.6, 1.0], atol=1e-6)
  config = tiny_config('power_margin')
  draws = 4000
  first = np.array([strategy.query(_ctx(config, dataset.pool_data(), logits, r), 1)[0]
                    for r in range(draws)])
  expected = scores / scores.sum()  # beta = 1
  frequency = np.bincount(first, minlength=4) / draws
  sigma = np.sqrt(expected * (1 - expected) / draws)
  assert (np.abs(frequency - expected) < 4 * sigma).all(), (frequency, expected)


def test_a_query_is_distinct_sized_and_the_same_for_the_same_round(strategy_and_data):
  strategy, dataset = strategy_and_data
  config = tiny_config('power_margin')
  logits = np.random.default_rng(1).normal(size=(50, 10)).astype(np.float32)
  query = strategy.query(_ctx(config, dataset.pool_data(), logits, 3), 20)
  assert query.dtype == np.int64 and query.size == 20 and np.unique(query).size == 20
  np.testing.assert_array_equal(query, strategy.query(_ctx(config, dataset.pool_data(), logits,
                                                           3), 20))
  assert not np.array_equal(query, strategy.query(_ctx(config, dataset.pool_data(), logits, 4),
                                                  20))
  assert strategy.query(_ctx(config, dataset.pool_data(), logits, 3), 500).size == 50


def test_a_cold_distribution_is_the_margin_top_k_and_beta_zero_is_uniform():
  scores = np.array([0.1, 0.9, 0.5, 0.7, 0.3])
  candidates = np.arange(10, 15)
  cold = selection.stochastic_top_k(scores, candidates, 3, np.random.default_rng(0),
                                    beta=1e6)
  np.testing.assert_array_equal(cold, selection.top_k(scores, candidates, 3))
  draws = np.array([selection.stochastic_top_k(scores, candidates, 1,
                                               np.random.default_rng(seed), beta=0.0)[0]
                    for seed in range(2000)])
  frequency = np.bincount(draws - 10, minlength=5) / 2000
  assert np.abs(frequency - 0.2).max() < 4 * np.sqrt(0.2 * 0.8 / 2000)


def test_one_round_through_the_loop_and_a_bad_beta(tmp_path):
  config = tiny_config('power_margin', **{'train.epochs': 1})
  records = experiment.run(config, str(tmp_path / 'a'))
  assert [r['query_size'] for r in records] == [20, 0]
  again = experiment.run(config, str(tmp_path / 'b'))
  assert records[0]['query_class_counts'] == again[0]['query_class_counts']
  with pytest.raises(JalError, match='beta=-1.0 must be non-negative'):
    experiment.run(tiny_config('power_margin', **{'strategy.power_margin.beta': -1.0}),
                   str(tmp_path / 'c'))
  assert not (tmp_path / 'c').exists()
