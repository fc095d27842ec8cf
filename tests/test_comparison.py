"""Tests of jal.comparison, the multi-seed comparison, and of its command line (python -m
jal.compare): the summary (mean, std, area under the learning curve) against NumPy; a comparison
whose strategies share each seed's initial pool, resumes and writes its summary; the arms of
initial pools x strategies; bad comparisons refused before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, tiny_config
from jal import comparison
from jal.errors import JalError


def _fixture_records():
  """Two strategies x three seeds x three rounds; seed 2 of 'b' has only two rounds."""
  rng = np.random.default_rng(0)
  out = {}
  for strategy in ('a', 'b'):
    out[strategy] = {}
    for seed in (0, 1, 2):
      rounds = 2 if (strategy, seed) == ('b', 2) else 3
      out[strategy][seed] = [
          {'num_labeled': 100 + 50 * r, 'test_accuracy': float(rng.uniform(0.3, 0.9)),
           'query_class_counts': rng.integers(0, 10, 4).tolist()} for r in range(rounds)]
  return out


def test_summary_mean_std_and_auc_match_numpy():
  records = _fixture_records()
  summary = comparison.summarize(records)
  for strategy, rounds in (('a', 3), ('b', 2)):
    acc = np.array([[r['test_accuracy'] for r in records[strategy][s][:rounds]]
                    for s in (0, 1, 2)])
    s = summary[strategy]
    assert s['num_labeled'] == [100, 150, 200][:rounds] and s['seeds'] == [0, 1, 2]
    np.testing.assert_allclose(s['accuracy_mean'], acc.mean(0), rtol=1e-12)
    np.testing.assert_allclose(s['accuracy_std'], acc.std(0, ddof=1), rtol=1e-12)
    x = np.array([100, 150, 200][:rounds], float)
    auc = [np.trapezoid(a, x) / (x[-1] - x[0]) for a in acc]
    np.testing.assert_allclose(s['auc'], auc, rtol=1e-12)
    assert s['auc_mean'] == pytest.approx(np.mean(auc)) and s['auc_std'] == pytest.approx(
        np.std(auc, ddof=1))
    counts = np.array([np.sum([r['query_class_counts'] for r in records[strategy][seed][:rounds]],
                              0) for seed in (0, 1, 2)])
    np.testing.assert_allclose(s['query_class_counts_mean'], counts.mean(0))
  table = comparison.summary_table(summary)
  assert '| `a` | 3 |' in table and table.count('\n') == 4


def test_single_seed_has_zero_std():
  records = {'a': {0: _fixture_records()['a'][0]}}
  s = comparison.summarize(records)['a']
  assert s['accuracy_std'] == [0.0, 0.0, 0.0] and s['auc_std'] == 0.0


def test_comparison_shares_initial_pools_resumes_and_writes_the_summary(tmp_path):
  config = tiny_config('random', **{'train.epochs': 1})
  workdir = str(tmp_path / 'cmp')
  summary = comparison.run_comparison(config, workdir, ['random', 'entropy'], [0, 1])
  assert set(summary) == {'random', 'entropy'}
  for name in (comparison.SUMMARY_JSON, comparison.SUMMARY_TABLE, comparison.ACCURACY_PLOT,
               comparison.CLASS_COUNTS_PLOT):
    assert os.path.getsize(os.path.join(workdir, name)) > 0
  records = comparison.load_records(workdir, ['random', 'entropy'], [0, 1])
  for seed in (0, 1):  # a trial's strategies start from the same pool and the same round 0
    first = [records[s][seed][0] for s in ('random', 'entropy')]
    assert first[0]['labeled_class_counts'] == first[1]['labeled_class_counts']
    assert first[0]['test_accuracy'] == first[1]['test_accuracy']
  assert (records['random'][0][0]['labeled_class_counts']
          != records['random'][1][0]['labeled_class_counts'])
  # Resuming finds every run finished: the same records, timings included
  # (a retrained round would have new ones).
  assert comparison.run_comparison(config, workdir, ['random', 'entropy'], [0, 1]) == summary
  assert comparison.load_records(workdir, ['random', 'entropy'], [0, 1]) == records
  with open(os.path.join(workdir, comparison.SUMMARY_JSON)) as f:
    assert json.load(f) == summary
  # The command line summarises what is there.
  result = subprocess.run([sys.executable, '-m', 'jal.compare', '--workdir', workdir,
                           '--strategies=random,entropy', '--seeds=0,1', '--summary_only'],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  assert '| `entropy` | 2 |' in result.stdout


@pytest.mark.parametrize('strategies,seeds,message', [
    (['random', 'no_such'], [0], "unknown strategy 'no_such'"),
    (['random', 'random'], [0], 'each once'),
    (['random'], [1, 1], 'each once'),
])
def test_bad_comparisons_fail_before_running(tmp_path, strategies, seeds, message):
  with pytest.raises(JalError, match=message):
    comparison.run_comparison(tiny_config('random'), str(tmp_path), strategies, seeds)
  assert not os.listdir(tmp_path)


def test_arms_cross_initial_pools_with_strategies():
  assert comparison.arms(['entropy']) == ['entropy']
  assert comparison.arms(['entropy', 'coreset'], ['random', 'kmeans']) == [
      'random/entropy', 'random/coreset', 'kmeans/entropy', 'kmeans/coreset']
  config = comparison.trial_config(tiny_config('random'), 'kmeans/entropy', 3)
  assert (config.initial_pool.name, config.strategy.name, config.seed) == ('kmeans', 'entropy', 3)
  plain = comparison.trial_config(tiny_config('random'), 'margin', 1)
  assert (plain.initial_pool.name, plain.strategy.name) == ('random', 'margin')
  with pytest.raises(JalError, match='initial_pool.name'):
    comparison.run_comparison(tiny_config('random'), '/nonexistent/never', ['random'], [0],
                              initial_pools=['no_such_pool'])
