"""Tests of jal.strategies.typiclust and jal.strategies.probcover on a fixed table of
self-supervised features (blobs; the network itself is tested in tests/initial_pools): the
features are computed once, at the first query (building trains nothing), TypiClust queries each uncovered blob's
most typical candidate, ProbCover covers the blobs and picks its δ by purity, both clip to the
candidates, refuse segmentation, and one round runs through the experiment loop."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from jal import checkpoint, experiment, initial_pools, sharding
from jal.errors import JalError
from jal.pool import Pool
from jal.strategies import base

# Ten blobs of 30 points on a circle of radius 10 (tight: std 0.1), one per ten-point block of
# the 300 train examples modulo 10; each blob's centre point sits exactly at the blob's centre.
N = 300


def _blob_features():
  rng = np.random.default_rng(0)
  blob = np.arange(N) % 10
  angle = 2 * np.pi * blob / 10
  centres = np.stack([10 * np.cos(angle), 10 * np.sin(angle), np.full(N, 10.0)], axis=1)
  features = centres + rng.normal(0, 0.1, (N, 3))
  features[:10] = centres[:10]  # points 0..9: the centres of blobs 0..9
  return features.astype(np.float32), blob


@pytest.fixture
def fixed_features(monkeypatch):
  features, blob = _blob_features()
  calls = []

  def table(config, data, mesh, kind, key=None):
    calls.append(kind)
    return features[:data.num_train]

  monkeypatch.setattr(initial_pools, 'self_supervised_features', table)
  return features, blob, calls


def _context(config, dataset, labeled, candidates):
  pool = Pool(num_train=N, labeled=np.asarray(labeled, np.int64),
              oracle_labels=np.zeros(len(labeled), np.int32))
  return base.RoundContext(config=config, data=dataset.pool_data(), round=0, pool=pool,
                           images=None, labels=None, candidates=np.asarray(candidates, np.int64),
                           task=None, mesh=sharding.make_mesh())


def test_typiclust_queries_the_most_typical_point_of_every_uncovered_blob(fixed_features):
  features, blob, calls = fixed_features
  config = tiny_config('typiclust', **{'strategy.typiclust.kmeans_n_init': 2})
  strategy, dataset = build_strategy(config)
  assert calls == []  # building trains nothing (a comparison builds every arm to check it)
  labeled = [10, 11, 12]  # blobs 0, 1, 2 hold a label
  candidates = np.setdiff1d(np.arange(N), labeled)
  # |L| + B = 10 clusters: the blobs. The 7 uncovered blobs give one point each, the most
  # typical of its blob (Eq. 4 with K = 30 // 2 = 15 of its 30 candidates, L2-normalised).
  query = strategy.query(_context(config, dataset, labeled, candidates), 7)
  assert sorted(blob[query]) == [3, 4, 5, 6, 7, 8, 9] and calls == ['simclr']
  x = features / np.linalg.norm(features, axis=1, keepdims=True)
  for pick in query:
    members = candidates[blob[candidates] == blob[pick]]
    dist = np.sqrt(((x[members][:, None] - x[members][None]) ** 2).sum(-1))
    mean_knn = np.sort(dist, axis=1)[:, 1:1 + len(members) // 2].mean(axis=1)
    assert pick == members[np.argmin(mean_knn)]
  assert strategy.query(_context(config, dataset, labeled, candidates[:5]), 50).size == 5


def test_probcover_covers_the_blobs_and_picks_delta_by_purity(fixed_features):
  features, blob, calls = fixed_features
  config = tiny_config('probcover', **{'strategy.probcover.kmeans_n_init': 2})
  strategy, dataset = build_strategy(config)
  assert calls == []
  labeled = [10, 11, 12]
  ctx = _context(config, dataset, labeled, np.setdiff1d(np.arange(N), labeled))
  query = strategy.query(ctx, 7)
  assert calls == ['simclr']  # once, at the first query
  # Normalised, the blobs are ~0.44 apart and ~0.005 wide; k-means with K = 10 finds them, so
  # every ball is pure up to the distance to the next blob.
  assert 0.05 < strategy.delta < 0.6
  assert sorted(blob[query]) == [3, 4, 5, 6, 7, 8, 9]  # one per uncovered blob
  assert ctx.metrics['probcover_coverage'] == 1.0 and ctx.metrics['probcover_delta'] > 0
  strategy.settings.delta = 1e-3  # a fixed δ: balls of one point
  assert strategy.query(ctx, 4).size == 4


@pytest.mark.parametrize('name', ['typiclust', 'probcover'])
def test_one_round_through_the_experiment_loop_and_no_segmentation(tmp_path, fixed_features,
                                                                   name):
  records = experiment.run(tiny_config(name, **{'train.epochs': 1}), str(tmp_path / 'run'))
  assert [r['num_labeled'] for r in records] == [30, 50]
  assert records[0]['query_metrics']['ssl_seconds'] >= 0
  labeled = checkpoint.Checkpointer(str(tmp_path / 'run' / 'checkpoints')).latest().pool.labeled
  assert np.unique(labeled).size == 50
  from jal.strategies import get
  assert 'per-pixel' in get(name).not_for_segmentation
