"""Tests of jal.strategies.badge: on fixed tables of probabilities and features the strategy queries
the seeding's picks among the round's candidates with the round's key, sets each pick's gradient
norm as its score, compiles once over rounds in a size bucket and refuses NaN outputs, a
non-linear classifier head and segmentation; one round runs through the experiment loop with no
implicit transfer."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import TableTask, one_query_without_transfers, softmax, table_context
from jal import sharding
from jal.acquisition import badge as badge_lib
from jal.errors import JalError
from jal.models import CosineClassifier, MultiHeadNet
from jal.strategies import badge


def _expected(logits, features, candidates, k, key):
  """The seeding on the candidates' rows, unpadded, and |g| of each pick (float64 NumPy)."""
  probs = softmax(logits[candidates]).astype(np.float32)
  picks = np.asarray(badge_lib.kmeans_pp_seeding(probs, features[candidates], k, key))
  a = probs - np.eye(probs.shape[1])[np.argmax(probs, axis=1)]
  norms = np.linalg.norm(a, axis=1) * np.linalg.norm(features[candidates].astype(np.float64), axis=1)
  return candidates[picks], norms[picks]


def test_strategy_queries_the_seeding_picks_among_candidates():
  rng = np.random.default_rng(8)
  logits = (2 * rng.standard_normal((100, 10))).astype(np.float32)
  features = (1 + rng.standard_normal((100, 12))).astype(np.float32)
  labeled = rng.choice(100, 10, replace=False)
  candidates = np.setdiff1d(np.arange(100), labeled)[::2]  # a candidate subset
  config = tiny_config('badge')
  mesh = sharding.make_mesh()
  strategy, dataset = build_strategy(config, mesh=mesh)
  task = TableTask(classifier=logits, features=features)
  ctx = table_context(config, dataset.pool_data(), task, candidates, labeled, 100, mesh=mesh)
  query = strategy.query(ctx, 15)
  expected, norms = _expected(logits, features, candidates, 15, ctx.key('badge'))
  assert query.dtype == np.int64
  np.testing.assert_array_equal(query, expected)
  np.testing.assert_allclose(ctx.scores, norms, rtol=1e-5)
  probs = softmax(logits[candidates])
  a = probs - np.eye(10)[np.argmax(probs, axis=1)]
  norms = np.linalg.norm(a, axis=1) * np.linalg.norm(features[candidates], axis=1)
  assert query[0] == candidates[np.argmax(norms)]  # the largest gradient first
  assert np.sort(strategy.query(ctx, 1000)).tolist() == candidates.tolist()  # clipped
  # Later rounds (fewer candidates) within the same size bucket compile the seeding once.
  later = [dataclasses.replace(ctx, candidates=candidates[extra:], round=extra)
           for extra in range(1, 4)]
  expected = [_expected(logits, features, c.candidates, 15, c.key('badge'))[0] for c in later]
  before = badge_lib.kmeans_pp_seeding._cache_size()  # pylint: disable=protected-access
  for c, e in zip(later, expected):
    np.testing.assert_array_equal(strategy.query(c, 15), e)
  assert badge_lib.kmeans_pp_seeding._cache_size() == before  # pylint: disable=protected-access
  features[candidates[3], 0] = np.nan
  with pytest.raises(JalError, match='NaN'):
    strategy.query(ctx, 15)


def test_refuses_a_non_linear_head_and_segmentation():
  config = tiny_config('badge')

  class CosineHead(badge.Strategy):
    def task_spec(self):
      spec = super().task_spec()
      model = MultiHeadNet(self.backbone(), {'classifier': CosineClassifier(10)})
      return dataclasses.replace(spec, model=model)

  mesh = sharding.make_mesh()
  strategy, dataset = build_strategy(config, mesh=mesh)  # the task's head: linear
  with pytest.raises(JalError, match='CosineClassifier'):
    CosineHead(config, dataset.pool_data(), strategy.task, mesh, strategy.settings)
  with pytest.raises(JalError, match='does not apply to segmentation'):
    badge.Strategy(config, None, types.SimpleNamespace(kind='segmentation'), None,
                   config.strategy.badge)


def test_one_round_through_the_experiment_loop(tmp_path):
  """Outputs go to the device explicitly: no implicit transfer in the round."""
  one_query_without_transfers('badge', str(tmp_path / 'run'))
