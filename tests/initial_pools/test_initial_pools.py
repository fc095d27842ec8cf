"""Tests of jal.initial_pools, the initial-pool strategies of Chandra et al. (2021) and their
dispatch (select_initial_pool), on 16x16 digits with width-4 networks and one epoch: every strategy
gives distinct eligible indices deterministically, the random pool is the one jal always drew, the
pretext-loss pool holds the highest rotation losses, bad settings fail before any training, and the
config's defaults. Each distinct self-supervised model is trained once per key and reused (the
trained_once fixture); everything after the scorer runs afresh in every call."""

from __future__ import annotations

import ml_collections
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import tiny_config
from helpers import (EXCLUDED, SIZE, initial_pool_config as _config, recorded as _recorded,
                     select_pool as _select)
from jal import initial_pools, rng
from jal.errors import JalError
from jal.initial_pools import random_pool


_SETTINGS = settings(max_examples=50, deadline=None)


# ---------------------------------------------------------------- random initial pools


def initial_indices(labels, size, rng_, exclude=()):
  """A random initial pool outside ``exclude``: the eligible indices the loop
  passes (`jal.experiment.initial_state`), drawn by `random_pool`."""
  return random_pool(np.flatnonzero(~np.isin(labels, np.asarray(exclude, np.int64))), size, rng_)


@st.composite
def _labels_and_size(draw):
  n = draw(st.integers(1, 200))
  num_classes = draw(st.integers(1, 6))
  labels = np.array(draw(st.lists(st.integers(0, num_classes - 1), min_size=n, max_size=n)))
  exclude = draw(st.lists(st.integers(0, num_classes - 1), max_size=num_classes, unique=True))
  allowed = int((~np.isin(labels, exclude)).sum())
  size = draw(st.integers(0, allowed))
  seed = draw(st.integers(0, 2**31 - 1))
  return labels, exclude, size, seed


@_SETTINGS
@given(case=_labels_and_size())
def test_initial_indices(case):
  labels, exclude, size, seed = case
  got = initial_indices(labels, size, rng.numpy_rng(seed, 'initial_pool'), exclude)
  assert got.dtype == np.int64 and got.shape == (size,)
  assert np.all(np.diff(got) > 0)  # sorted and distinct
  assert np.all((got >= 0) & (got < labels.size))
  assert not np.isin(labels[got], exclude).any()
  again = initial_indices(labels, size, rng.numpy_rng(seed, 'initial_pool'), exclude)
  np.testing.assert_array_equal(got, again)


def test_initial_indices_differ_between_seeds_and_are_uniform():
  labels = np.arange(100) % 10
  draws = [initial_indices(labels, 20, rng.numpy_rng(seed, 'initial_pool'), (3, 7))
           for seed in range(200)]
  assert len({d.tobytes() for d in draws}) == len(draws)
  counts = np.bincount(np.concatenate(draws), minlength=100)
  allowed = ~np.isin(labels, (3, 7))
  assert np.all(counts[~allowed] == 0)
  # Each allowed index has probability 20/80 per draw: 50 expected out of 200.
  assert counts[allowed].min() >= 25 and counts[allowed].max() <= 80


def test_initial_indices_too_few_allowed_raises():
  labels = np.array([0, 0, 1, 1, 2])
  with pytest.raises(JalError, match='excluded'):
    initial_indices(labels, 4, rng.numpy_rng(0, 'initial_pool'), (0,))
  with pytest.raises(JalError):
    initial_indices(labels, 6, rng.numpy_rng(0, 'initial_pool'))
  # Exactly as many as allowed works: all of them.
  np.testing.assert_array_equal(
      initial_indices(labels, 3, rng.numpy_rng(0, 'initial_pool'), (0,)), [2, 3, 4])


# ---------------------------------------------------------------------- every strategy

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


# ----------------------------------------------------------------- errors and defaults


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
