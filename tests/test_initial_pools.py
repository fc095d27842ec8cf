"""Tests of jal.initial_pools: paper 001's initial-pool strategies.

The selection rules (highest scores, Sec. 4.1's bins, Sec. 3.2's per-cluster
allocation) are checked against hand-computed answers and invariants; the
self-supervised scorers and `select_initial_pool` on 16x16 digits with
width-4 networks and one epoch.

Training is the slow part, so each distinct self-supervised model is
trained once per key and the result is reused (`_memoized`); that the
scorers themselves are deterministic is checked by training one of each
again with the recorded arguments (`test_scorers_are_deterministic...`).
Everything after the scorer (k-means, the draws, the bins) runs afresh in
every call.
"""

from __future__ import annotations

import dataclasses

import jax
import ml_collections
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import load_dataset, tiny_config
from jal import initial_pools, rng, selection, sharding, train
from jal.errors import JalError
from jal.selection import binned, cluster_allocation, highest_scores, sample_clusters

_SETTINGS = settings(max_examples=50, deadline=None)
SIZE = 20
EXCLUDED = (0, 1)


# ------------------------------------------------------------------- highest scores


def test_highest_scores_best_first_and_ties_to_the_lower_index():
  scores = np.array([1.0, 3.0, 3.0, 2.0, 3.0])
  np.testing.assert_array_equal(highest_scores(scores, 2), [1, 2])
  np.testing.assert_array_equal(highest_scores(scores, 4), [1, 2, 4, 3])
  np.testing.assert_array_equal(highest_scores(np.array([5, 7, 7, 5]), 3), [1, 2, 0])
  assert highest_scores(scores, 0).dtype == np.int64
  assert highest_scores(scores, 0).size == 0


def test_highest_scores_rejects_nan_and_bad_sizes():
  with pytest.raises(ValueError, match='NaN'):
    highest_scores(np.array([0.0, np.nan]), 1)
  with pytest.raises(ValueError, match='size=3'):
    highest_scores(np.zeros(2), 3)
  with pytest.raises(ValueError, match='1-D'):
    highest_scores(np.zeros((2, 2)), 1)


# ------------------------------------------------------------------------- binned

# Descending order: 1 (.9), 5 (.8), 3 (.7), 7 (.6), 0 (.5), 8 (.4), 4 (.3), 6 (.2), 2 (.1), 9 (0).
ORDERED = np.array([0.5, 0.9, 0.1, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4, 0.0])


@pytest.mark.parametrize('size, num_bins, expected', [
    # n = 2: bins [1 5 3 7 0] and [8 4 6 2 9]; the hardest of the first, the easiest of the last.
    (4, 2, [1, 5, 9, 2]),
    (5, 2, [1, 5, 3, 9, 2]),  # 5 = 3 + 2: the remainder goes to the hardest bin
    # n = 5: bins [1 5] [3 7] [0 8] [4 6] [2 9].
    (5, 5, [1, 3, 0, 4, 9]),
    (7, 5, [1, 5, 3, 7, 0, 4, 9]),  # shares 2 2 1 1 1
    (10, 5, [1, 5, 3, 7, 0, 8, 4, 6, 9, 2]),  # everything
    # n = 3: bins of 4, 3, 3: [1 5 3 7] [0 8 4] [6 2 9]; shares 2 1 1.
    (4, 3, [1, 5, 0, 9]),
    (1, 1, [9]),  # one bin: the easiest
    (3, 1, [9, 2, 6]),
    (0, 5, []),
])
def test_binned_known_answers(size, num_bins, expected):
  chosen = binned(ORDERED, size, num_bins)
  assert chosen.dtype == np.int64
  np.testing.assert_array_equal(chosen, expected)


def test_binned_ties_keep_index_order():
  # One score for all: bins [0 1] [2 3]; the first bin's first, the last bin's last.
  np.testing.assert_array_equal(binned(np.ones(4), 2, 2), [0, 3])


@_SETTINGS
@given(n=st.integers(1, 40), num_bins=st.integers(1, 12), data=st.data())
def test_binned_takes_size_distinct_and_each_bins_share(n, num_bins, data):
  size = data.draw(st.integers(0, n))
  scores = np.asarray(data.draw(st.lists(st.integers(0, 5), min_size=n, max_size=n)), float)
  chosen = binned(scores, size, num_bins)
  assert chosen.size == size and np.unique(chosen).size == size
  # Bin of each pick in the descending order; shares differ by at most one, larger first.
  order = np.lexsort((np.arange(n), -scores))
  rank = np.empty(n, int)
  rank[order] = np.arange(n)
  bounds = np.cumsum([b.size for b in np.array_split(np.arange(n), num_bins)])
  counts = np.bincount(np.searchsorted(bounds, rank[chosen], side='right'), minlength=num_bins)
  np.testing.assert_array_equal(counts, selection.even_split(size, num_bins))


def test_binned_rejects_bad_settings():
  with pytest.raises(ValueError, match='num_bins'):
    binned(ORDERED, 3, 0)
  with pytest.raises(ValueError, match='size=11'):
    binned(ORDERED, 11, 2)


# ----------------------------------------------------------------- cluster allocation


@pytest.mark.parametrize('sizes, size, expected', [
    ([10, 10, 10], 9, [3, 3, 3]),  # B / K each
    ([10, 10, 10], 10, [4, 3, 3]),  # one left over: ties to the lower index
    ([10, 10, 10], 11, [4, 4, 3]),
    ([2, 10, 10], 12, [2, 5, 5]),  # cluster 0 holds fewer than its share of 4
    ([2, 10, 10], 13, [2, 6, 5]),  # level 5, one left: clusters 1 and 2 tie
    ([2, 10, 7], 15, [2, 7, 6]),  # level 6, one left: to the largest, cluster 1
    ([1, 3, 20], 12, [1, 3, 8]),  # two small clusters give everything
    ([10, 20, 30], 4, [1, 1, 2]),  # level 1, one left: to the largest
    ([0, 5], 3, [0, 3]),  # an empty cluster
    ([2, 3], 10, [2, 3]),  # more than there is: everything
])
def test_equal_allocation_known_answers(sizes, size, expected):
  allocation = cluster_allocation(np.array(sizes), size, 'equal')
  assert allocation.dtype == np.int64
  np.testing.assert_array_equal(allocation, expected)


@pytest.mark.parametrize('sizes, size, expected', [
    ([10, 30, 60], 10, [1, 3, 6]),  # exact quotas |C_j| B / N_U
    ([10, 30, 60], 7, [1, 2, 4]),  # quotas .7 2.1 4.2: one left, to the largest remainder
    ([1, 1, 1], 2, [1, 1, 0]),  # equal remainders: the lower indices
    ([5, 5, 2], 6, [3, 2, 1]),  # quotas 2.5 2.5 1: the tie to cluster 0
    ([3, 1], 3, [2, 1]),  # quotas 2.25 .75: never more than a cluster holds
    ([2, 3], 10, [2, 3]),
    ([0, 0], 3, [0, 0]),
])
def test_proportional_allocation_known_answers(sizes, size, expected):
  allocation = cluster_allocation(np.array(sizes), size, 'proportional')
  assert allocation.dtype == np.int64
  np.testing.assert_array_equal(allocation, expected)


@_SETTINGS
@given(sizes=st.lists(st.integers(0, 30), min_size=1, max_size=8), size=st.integers(0, 250))
def test_allocations_fit_and_sum_to_the_budget(sizes, size):
  sizes = np.array(sizes)
  budget = min(size, int(sizes.sum()))
  for mode in ('equal', 'proportional'):
    allocation = cluster_allocation(sizes, size, mode)
    assert allocation.sum() == budget
    assert (allocation >= 0).all() and (allocation <= sizes).all()
  # Equal: a cluster below the others' level gives everything it has.
  equal = cluster_allocation(sizes, size, 'equal')
  assert all(a == n or a >= equal.max() - 1 for a, n in zip(equal, sizes))
  # Proportional: within one of the exact quota |C_j| B / N_U.
  if sizes.sum():
    quota = sizes * budget / sizes.sum()
    assert (np.abs(cluster_allocation(sizes, size, 'proportional') - quota) < 1).all()


def test_allocation_rejects_bad_input():
  with pytest.raises(ValueError, match='mode'):
    cluster_allocation(np.array([3, 3]), 2, 'uniform')
  with pytest.raises(ValueError, match='non-negative'):
    cluster_allocation(np.array([3, -1]), 2, 'equal')
  with pytest.raises(ValueError, match='size'):
    cluster_allocation(np.array([3, 3]), -1, 'equal')


@pytest.mark.parametrize('mode, expected', [('equal', [2, 6, 5]), ('proportional', [1, 6, 6])])
def test_sample_clusters_draws_each_share_from_its_cluster(mode, expected):
  ids = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [2, 10, 10]))
  chosen = sample_clusters(ids, 13, mode, np.random.default_rng(1))
  assert chosen.dtype == np.int64
  assert np.all(np.diff(chosen) > 0)  # sorted, distinct
  np.testing.assert_array_equal(np.bincount(ids[chosen], minlength=3), expected)
  again = sample_clusters(ids, 13, mode, np.random.default_rng(1))
  np.testing.assert_array_equal(chosen, again)
  if mode == 'equal':  # the small cluster gives both its members
    assert set(np.flatnonzero(ids == 0)) <= set(chosen)


# ------------------------------------------------------------ self-supervised scoring


def _config(name='random', seed=0, **settings):
  config = tiny_config('random', **{'dataset.image_size': 16, 'dataset.max_train': 200,
                                    'seed': seed})
  settings_train = dict(epochs=1, batch_size=32, learning_rate=2e-3)
  config.initial_pool = initial_pools.default_config(
      name=name, size=SIZE, exclude_classes=EXCLUDED, kmeans_n_init=2,
      ssl_model=dict(name='small_cnn', width=4, dtype='float32'),
      ssl_train=train.train_config(optimizer='adam', weight_decay=0.0, momentum=0.0,
                                   crop_pad=0, **settings_train),
      vae=dict(z_dim=4, width=2, dtype='float32'),
      vae_train=train.train_config(optimizer='adam', weight_decay=0.0, momentum=0.0,
                                   crop_pad=0, **settings_train),
      **settings)
  return config


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('JAL_CACHE_DIR', str(tmp_path_factory.mktemp('cache')))
    dataset = load_dataset(_config())
  return dataset, sharding.make_mesh()


def _eligible(config, dataset):
  """What the loop passes: the train indices outside the excluded classes."""
  exclude = np.asarray(tuple(config.initial_pool.get('exclude_classes', ())), np.int64)
  return np.flatnonzero(~np.isin(dataset.train_labels, exclude))


def _select(config, dataset, mesh, size):
  return initial_pools.select_initial_pool(config, dataset.pool_data(), mesh, size,
                                           _eligible(config, dataset))


# Real scorer results by (scorer, key, settings), and the arguments of each call.
_TRAINED: dict = {}
_REAL = {'rotation': initial_pools.rotation_losses, 'vae': initial_pools.vae_losses}


def _memo_key(kind, key, kwargs):
  return (kind, jax.random.key_data(key).tobytes(),
          repr(sorted((k, str(v)) for k, v in kwargs.items())))


def _memoized(kind):
  def scorer(dataset, mesh, *, key, **kwargs):
    entry = _memo_key(kind, key, kwargs)
    if entry not in _TRAINED:
      _TRAINED[entry] = (_REAL[kind](dataset, mesh, key=key, **kwargs), key, kwargs)
    return _TRAINED[entry][0]
  return scorer


@pytest.fixture
def trained_once(monkeypatch):
  monkeypatch.setattr(initial_pools, 'rotation_losses', _memoized('rotation'))
  monkeypatch.setattr(initial_pools, 'vae_losses', _memoized('vae'))


def _recorded(kind):
  return next(value for entry, value in _TRAINED.items() if entry[0] == kind)


CASES = [
    ('random', {}),
    ('pretext_loss', {}),
    ('vae_loss', {}),
    ('kmeans', dict(features='rotation', allocation='equal')),
    ('kmeans', dict(features='vae', allocation='proportional')),
    ('binned', dict(score='pretext_loss', num_bins=2)),
    ('binned', dict(score='vae_loss', num_bins=5)),
]


@pytest.mark.parametrize('name, settings', CASES, ids=lambda c: str(c))
def test_every_strategy_gives_size_distinct_eligible_indices_deterministically(
    setup, trained_once, name, settings):
  dataset, mesh = setup
  config = _config(name, **settings)
  chosen = _select(config, dataset, mesh, SIZE)
  assert chosen.dtype == np.int64 and chosen.shape == (SIZE,)
  assert np.all(np.diff(chosen) > 0)  # sorted, distinct
  assert chosen.min() >= 0 and chosen.max() < dataset.num_train
  assert not np.isin(dataset.train_labels[chosen], EXCLUDED).any()
  np.testing.assert_array_equal(
      _select(config, dataset, mesh, SIZE), chosen)


def test_random_is_the_pool_jal_always_drew(setup):
  dataset, mesh = setup
  config = _config('random', seed=3)
  allowed = np.flatnonzero(~np.isin(dataset.train_labels, EXCLUDED))
  expected = np.sort(rng.numpy_rng(3, 'initial_pool').choice(allowed, SIZE, replace=False))
  np.testing.assert_array_equal(
      _select(config, dataset, mesh, SIZE), expected)
  # A config whose initial_pool has only size and exclude_classes: random, the same pool.
  config = tiny_config('random', seed=3)
  config.initial_pool = ml_collections.ConfigDict(dict(size=SIZE, exclude_classes=EXCLUDED))
  np.testing.assert_array_equal(
      _select(config, dataset, mesh, SIZE), expected)


@pytest.mark.parametrize('name', ['random', 'kmeans'])
def test_another_seed_gives_another_pool(setup, trained_once, name):
  dataset, mesh = setup
  pools = [_select(_config(name, seed=seed), dataset, mesh, SIZE)
           for seed in (0, 1)]
  assert not np.array_equal(*pools)


def test_pretext_loss_takes_the_highest_rotation_losses(setup, trained_once):
  dataset, mesh = setup
  chosen = _select(_config('pretext_loss'), dataset, mesh, SIZE)
  losses, _ = _recorded('rotation')[0]
  eligible = ~np.isin(dataset.train_labels, EXCLUDED)
  threshold = np.sort(losses[eligible])[-SIZE]
  assert (losses[chosen] >= threshold).all()


@pytest.mark.parametrize('kind', ['rotation', 'vae'])
def test_scorers_are_deterministic_finite_and_compiled_once(setup, trained_once, kind):
  dataset, mesh = setup
  name = 'pretext_loss' if kind == 'rotation' else 'vae_loss'
  _select(_config(name), dataset, mesh, SIZE)  # trains, if not yet
  (losses, features), key, kwargs = _recorded(kind)
  n = dataset.num_train
  assert losses.shape == (n,) and losses.dtype == np.float32
  assert features.shape == ((n, 16) if kind == 'rotation' else (n, 4))  # 4 * width; z_dim
  assert np.isfinite(losses).all() and np.isfinite(features).all() and (losses >= 0).all()
  traces = initial_pools.TRACE_COUNTS[kind]
  again = _REAL[kind](dataset.pool_data(), mesh, key=key, **kwargs)
  assert initial_pools.TRACE_COUNTS[kind] == traces  # the scoring pass is not compiled again
  np.testing.assert_array_equal(again[0], losses)
  np.testing.assert_array_equal(again[1], features)


# ------------------------------------------------------------------------- errors


@pytest.mark.parametrize('settings, match', [
    (dict(name='coreset'), r"config\.initial_pool\.name='coreset' is unknown"),
    (dict(name='kmeans', allocation='uniform'), r'config\.initial_pool\.allocation'),
    (dict(name='binned', score='entropy'), r'config\.initial_pool\.score'),
    (dict(name='kmeans', features='pixels'), r'config\.initial_pool\.features'),
    (dict(name='binned', num_bins=0), r'config\.initial_pool\.num_bins=0'),
])
def test_bad_settings_are_one_line_errors_before_any_training(setup, settings, match):
  dataset, mesh = setup
  with pytest.raises(JalError, match=match):
    _select(_config(**settings), dataset, mesh, SIZE)


def test_a_pool_larger_than_the_eligible_examples_is_refused(setup):
  dataset, mesh = setup
  eligible = int((~np.isin(dataset.train_labels, EXCLUDED)).sum())
  with pytest.raises(JalError, match=rf'config\.initial_pool\.size={eligible + 1}.*{eligible}'):
    _select(_config('pretext_loss'), dataset, mesh, eligible + 1)


def test_the_vae_refuses_images_below_16_pixels(setup):
  dataset, mesh = setup
  small = dataclasses.replace(dataset, train_images=dataset.train_images[:, :8, :8])
  config = _config('vae_loss')
  with pytest.raises(JalError, match=r'16x16.*config\.dataset\.image_size'):
    _select(config, small, mesh, SIZE)


def test_config_has_every_key_with_its_default():
  cfg = initial_pools.default_config()
  assert (cfg.name, cfg.size, cfg.exclude_classes) == ('random', 0.1, ())
  assert (cfg.allocation, cfg.num_bins, cfg.score, cfg.features) == (
      'equal', 5, 'pretext_loss', 'rotation')
  assert cfg.ssl_model.name == 'small_cnn' and cfg.ssl_model.width is None
  cfg.ssl_model.width = 8  # a FieldReference of type int
  assert (cfg.vae.z_dim, cfg.vae.width, cfg.beta) == (32, 64, 1.0)
  assert cfg.vae_train.optimizer == 'adam' and cfg.vae_train.learning_rate == 5e-4
  assert cfg.ssl_train.epochs == 15
  initial_pools.check_settings(cfg)
