"""Tests of jal.trials, seeds trained in lockstep: run_comparison with vectorize_seeds=True fits
each round's seeds together (jal.train.fit_trials) and gives the runs of one seed at a time."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from jal import comparison, experiment


def test_vectorized_seeds_give_the_runs_of_one_seed_at_a_time(tmp_path, monkeypatch):
  from jal import train
  config = tiny_config('entropy', **{'train.epochs': 1})
  one_by_one = comparison.run_comparison(config, str(tmp_path / 'seq'), ['entropy'], [0, 1],
                                         vectorize_seeds=False)
  calls, experiments = [], []
  fit_trials, set_up = train.fit_trials, experiment.set_up
  monkeypatch.setattr(train, 'fit_trials',
                      lambda *a, **k: calls.append(len(a[1])) or fit_trials(*a, **k))

  def recording_set_up(*a, **k):
    e, state = set_up(*a, **k)
    experiments.append(e)
    return e, state
  monkeypatch.setattr(experiment, 'set_up', recording_set_up)
  together = comparison.run_comparison(config, str(tmp_path / 'vec'), ['entropy'], [0, 1],
                                       vectorize_seeds=True)
  assert calls == [2, 2]  # both rounds fitted the two seeds together
  # One device copy of the images for both trials.
  assert experiments[0].train_images is experiments[1].train_images
  assert experiments[0].test_images is experiments[1].test_images
  a = comparison.load_records(str(tmp_path / 'seq'), ['entropy'], [0, 1])['entropy']
  b = comparison.load_records(str(tmp_path / 'vec'), ['entropy'], [0, 1])['entropy']
  for seed in (0, 1):
    assert [r['num_labeled'] for r in a[seed]] == [r['num_labeled'] for r in b[seed]]
    # The same initial pool, the same training up to float reassociation (~1e-7).
    assert a[seed][0]['labeled_class_counts'] == b[seed][0]['labeled_class_counts']
    assert a[seed][0]['train_loss'] == pytest.approx(b[seed][0]['train_loss'], rel=1e-4)
  np.testing.assert_allclose(together['entropy']['accuracy_mean'],
                             one_by_one['entropy']['accuracy_mean'], atol=0.02)


def test_a_self_supervised_initial_pool_is_chosen_once_per_seed(monkeypatch):
  """The strategies of one seed share the initial pool: its network trains once (the
  selection is remembered by its inputs), and another seed or pool config chooses anew."""
  from jal import initial_pools
  calls = []

  def select(config, pool_data, mesh, size, eligible):
    calls.append(config.seed)
    return np.random.default_rng(config.seed).choice(eligible, size, replace=False)
  monkeypatch.setattr(initial_pools, 'select_initial_pool', select)
  monkeypatch.setattr(experiment, '_INITIAL_POOLS', {})

  def pool(strategy, seed, **overrides):
    config = tiny_config(strategy, **{'initial_pool.name': 'pretext_loss', 'seed': seed,
                                      **overrides})
    parts = experiment.build(config)
    state = experiment.initial_state(config, parts.pool_data, parts.oracle, parts.initial_size,
                                     parts.mesh, parts.task)
    return state.pool.labeled.tolist()

  first = pool('entropy', 0)
  assert pool('margin', 0) == first and calls == [0]
  assert pool('entropy', 1) != first and calls == [0, 1]
  pool('entropy', 0, **{'initial_pool.ssl_train.epochs': 3})
  assert calls == [0, 1, 0]
