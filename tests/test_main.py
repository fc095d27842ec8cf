"""The command line, as a user runs it: one-line errors, SIGKILL and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO, strip_timings

TINY = ['--config.dataset.max_train=300', '--config.dataset.max_test=100',
        '--config.initial_pool.size=30', '--config.budget=20', '--config.num_rounds=4',
        '--config.model.width=4', '--config.train.epochs=4',
        '--config.strategy.pal.scoring_model.width=4',
        '--config.strategy.pal.scoring_train.epochs=2', '--config.strategy.pal.finetune.epochs=1',
        '--config.strategy.name=entropy']


def jal_main(workdir, *flags, wait=True, tmp_path=None):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  if tmp_path is not None:
    env['JAL_CACHE_DIR'] = str(tmp_path / 'cache')
  cmd = [sys.executable, '-m', 'jal.main', '--config', 'configs/digits.py',
         f'--workdir={workdir}', *flags]
  if not wait:
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
  return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def read_results(workdir):
  path = os.path.join(workdir, 'results.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


@pytest.mark.parametrize('flags, message', [
    (['--config.strategy.name=nope'], "jal: error: unknown strategy 'nope'"),
    (['--config.budget=-3'], 'jal: error: config.budget=-3 must be positive'),
])
def test_bad_input_is_one_line_without_traceback(tmp_path, flags, message):
  result = jal_main(tmp_path / 'run', *flags, tmp_path=tmp_path)
  assert result.returncode == 2, result.stderr
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
  error_lines = [l for l in result.stderr.splitlines() if l.startswith('jal: error:')]
  assert len(error_lines) == 1


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
  # The uninterrupted run goes in this process, through the command line's own code
  # (jal.cli.execute): the same program as `python -m jal.main`, one process start less.
  from jal import cli, main
  status = cli.execute(main.main, ['jal', '--config', os.path.join(REPO, 'configs/digits.py'),
                                   f'--workdir={tmp_path / "a"}', *TINY])
  assert status == 0
  expected = read_results(tmp_path / 'a')
  assert len(expected) == 4

  process = jal_main(tmp_path / 'b', *TINY, wait=False, tmp_path=tmp_path)
  deadline = time.monotonic() + 240
  while not read_results(tmp_path / 'b') and time.monotonic() < deadline:
    time.sleep(0.02)
  process.send_signal(signal.SIGKILL)
  process.wait()
  killed = read_results(tmp_path / 'b')
  assert 1 <= len(killed) < 4, f'the run was not killed mid-way ({len(killed)} rounds)'

  # The resume, like the uninterrupted run, in this process: the killed one is gone.
  status = cli.execute(main.main, ['jal', '--config', os.path.join(REPO, 'configs/digits.py'),
                                   f'--workdir={tmp_path / "b"}', *TINY])
  assert status == 0
  assert strip_timings(read_results(tmp_path / 'b')) == strip_timings(expected)


def test_svhn_without_data_or_network_stops_with_the_missing_data_error(tmp_path):
  from jal.data import tfds_source
  if tfds_source.network_available():
    pytest.skip('this machine can reach the network: tfds would download SVHN')
  env = dict(os.environ, JAX_PLATFORMS='cpu', JAL_DATA_DIR=str(tmp_path / 'empty'),
             JAL_CACHE_DIR=str(tmp_path / 'cache'), TFDS_DATA_DIR=str(tmp_path / 'tfds'))
  (tmp_path / 'empty').mkdir()
  result = subprocess.run([sys.executable, '-m', 'jal.main', '--config', 'configs/pal_svhn.py',
                           f'--workdir={tmp_path / "run"}'], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 2
  assert "jal: error: dataset 'svhn_cropped' not found" in result.stderr
  assert 'Traceback' not in result.stderr
  assert not (tmp_path / 'run').exists()
