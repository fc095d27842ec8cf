"""experiments/benchmark.py runs (jal side only, tiny sizes) and prints its table."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO


def test_benchmark_runs_and_reports_every_workload(tmp_path):
  out = tmp_path / 'figures.json'
  result = subprocess.run(
      [sys.executable, 'experiments/benchmark.py', '--reference=none', '--network=small_cnn',
       '--width=4', '--batch_size=8', '--train_steps=2', '--eval_batch_size=16',
       '--pool_size=20', '--round_labeled=16', '--round_unlabeled=24', '--round_budget=6',
       '--round_epochs=1', '--repeats=1', f'--json={out}'],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  for workload in ('train', 'inference', 'pal_score', 'pal_round'):
    assert f'  {workload}' in result.stdout
  figures = json.loads(out.read_text())['figures']
  assert figures['train']['jal']['items'] == 16
  assert figures['pal_score']['jal']['items'] == 20
  assert all(f['jal']['seconds'] > 0 for f in figures.values())


def test_query_time_reports_entropy_units(tmp_path):
  out = tmp_path / 'query.json'
  result = subprocess.run(
      [sys.executable, 'experiments/query_time.py', '--network=small_cnn', '--width=4',
       '--candidates=40', '--budget=5', '--labeled=20', '--eval_batch_size=16',
       '--mc_batch_size=4', '--num_mc_samples=3', '--repeats=1', '--mc_repeats=1', '--strategies=coreset,bald_last_layer',
       f'--json={out}'],
      cwd=REPO, env=dict(os.environ, JAX_PLATFORMS='cpu'), capture_output=True, text=True,
      timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  figures = json.loads(out.read_text())['figures']
  assert list(figures) == ['entropy', 'coreset', 'bald_last_layer']  # Entropy first: the unit
  assert all(f['seconds'] > 0 and f['compile_seconds'] >= 0 for f in figures.values())
  assert '  coreset ' in result.stdout and '(paper    15.18)' in result.stdout
