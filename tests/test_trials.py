"""Tests of jal.trials, seeds trained in lockstep: run_comparison with vectorize_seeds=True fits
each round's seeds together (jal.train.fit_trials) and gives the runs of one seed at a time."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_config
from jal import comparison


def test_vectorized_seeds_give_the_runs_of_one_seed_at_a_time(tmp_path, monkeypatch):
  from jal import train
  config = tiny_config('entropy', **{'train.epochs': 1})
  one_by_one = comparison.run_comparison(config, str(tmp_path / 'seq'), ['entropy'], [0, 1],
                                         vectorize_seeds=False)
  calls = []
  fit_trials = train.fit_trials
  monkeypatch.setattr(train, 'fit_trials',
                      lambda *a, **k: calls.append(len(a[1])) or fit_trials(*a, **k))
  together = comparison.run_comparison(config, str(tmp_path / 'vec'), ['entropy'], [0, 1],
                                       vectorize_seeds=True)
  assert calls == [2, 2]  # both rounds fitted the two seeds together
  a = comparison.load_records(str(tmp_path / 'seq'), ['entropy'], [0, 1])['entropy']
  b = comparison.load_records(str(tmp_path / 'vec'), ['entropy'], [0, 1])['entropy']
  for seed in (0, 1):
    assert [r['num_labeled'] for r in a[seed]] == [r['num_labeled'] for r in b[seed]]
    # The same initial pool, the same training up to float reassociation (~1e-7).
    assert a[seed][0]['labeled_class_counts'] == b[seed][0]['labeled_class_counts']
    assert a[seed][0]['train_loss'] == pytest.approx(b[seed][0]['train_loss'], rel=1e-4)
  np.testing.assert_allclose(together['entropy']['accuracy_mean'],
                             one_by_one['entropy']['accuracy_mean'], atol=0.02)
