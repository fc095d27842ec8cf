"""experiments/device_check.py: every row's code path at smoke sizes, with TensorFlow blocked,
a failing row that does not stop the others, and the JSON written as rows finish."""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import pytest

from conftest import REPO

# Nothing on the device check's path may import these (the GPU machine has none of them).
BLOCKED = ('tensorflow', 'tensorflow_datasets', 'clu')


@pytest.fixture
def device_check(monkeypatch):
  """The script as a module, with TensorFlow, tfds and clu made unimportable."""
  for name in BLOCKED:
    monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError
  monkeypatch.syspath_prepend(os.path.join(REPO, 'experiments'))
  import device_check  # pylint: disable=g-import-not-at-top
  return device_check


def _has(module: str) -> bool:
  try:
    return importlib.util.find_spec(module) is not None
  except (ImportError, ValueError):
    return False


def test_smoke_runs_every_row(device_check, tmp_path):
  report = device_check.main(['--smoke', '--isolation=inline', f'--out={tmp_path}'])
  rows = {r['name']: r for r in report['rows']}
  assert list(rows) == [row.name for row in device_check.ROWS]
  assert report['finished'] and report['environment']['jax']
  for name in ('jal_train', 'jal_inference', 'pal_score', 'coreset', 'bald', 'pal_round'):
    row = rows[name]
    assert row['status'] == 'ok', row.get('traceback', row)
    assert row['value'] > 0 and row['compile_seconds'] >= 0
    assert row['goal']['op'] in ('>=', '<=') and row['passed'] is None  # smoke: not judged
  assert rows['jal_train']['details']['images_per_call'] == 16  # 8 x 2 steps
  assert rows['pal_score']['details']['images_per_call'] == 40
  assert rows['pal_round']['details']['epochs_timed'] == [1, 2]
  assert rows['pal_round']['details']['task_network'] == 'small_cnn'
  for name in ('badge', 'batchbald'):
    if _has(f'jal.acquisition.{name}'):
      assert rows[name]['status'] == 'ok', rows[name]
    else:
      assert rows[name]['status'] == 'skipped'
      assert rows[name]['reason'].startswith('not in this checkout')
  for name in ('torch_train', 'torch_inference', 'torch_pal_score'):
    if _has('torch'):
      assert rows[name]['status'] == 'ok' and rows[name]['ratio_jal_over_torch'] > 0
    else:
      assert rows[name] == {**rows[name], 'status': 'skipped', 'reason': 'torch is not installed'}
  assert json.loads((tmp_path / 'device_check.json').read_text()) == json.loads(
      json.dumps(report))
  log = (tmp_path / 'device_check.log').read_text()
  assert '| pal_round | ' in log and '| row | result | goal |' in log


def test_a_failing_row_is_recorded_and_the_next_row_runs(device_check, tmp_path, monkeypatch):
  written = []
  write_json = device_check._write_json  # pylint: disable=protected-access

  def spy(path, report):
    written.append([r['status'] for r in report['rows']])
    write_json(path, report)

  def broken(sizes):
    raise ValueError('this row is broken')

  rows = (device_check.Row('broken', broken, 'a row that raises', device_check.Goal('<=', 1, 's')),
          device_check.ROWS_BY_NAME['coreset'])
  monkeypatch.setattr(device_check, 'ROWS', rows)
  monkeypatch.setattr(device_check, 'ROWS_BY_NAME', {r.name: r for r in rows})
  monkeypatch.setattr(device_check, '_write_json', spy)
  report = device_check.main(['--smoke', '--isolation=inline', f'--out={tmp_path}'])
  broken_row, coreset = report['rows']
  assert broken_row['status'] == 'error'
  assert broken_row['error'] == 'ValueError: this row is broken'
  assert 'passed' not in broken_row and broken_row['goal']['target'] == 1
  assert coreset['status'] == 'ok'
  # Written at the start, after each row, and at the end.
  assert written == [[], ['error'], ['error', 'ok'], ['error', 'ok']]


def test_a_row_in_its_own_process(device_check, tmp_path, monkeypatch):
  # The child process cannot import TensorFlow either: modules of those names that refuse.
  blocked = tmp_path / 'blocked'
  blocked.mkdir()
  for name in BLOCKED:
    (blocked / f'{name}.py').write_text('raise ImportError("blocked by the test")\n')
  monkeypatch.setenv('PYTHONPATH', os.pathsep.join(
      [str(blocked), REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
  report = device_check.main(['--smoke', '--rows=coreset', f'--out={tmp_path}'])
  (row,) = report['rows']
  assert row['status'] == 'ok', row
  assert row['details']['k'] == device_check.PRESETS['smoke']['coreset_k']
  assert row['process_seconds'] >= row['row_seconds'] > 0


def test_rows_that_no_longer_fit_the_budget_are_skipped(device_check, tmp_path):
  report = device_check.main(['--smoke', '--budget_s=1', '--rows=coreset,bald',
                              f'--out={tmp_path}'])
  assert [r['status'] for r in report['rows']] == ['skipped', 'skipped']
  assert report['rows'][1]['reason'].endswith('run it with --rows=bald')


def test_unknown_rows_are_refused(device_check, capsys):
  with pytest.raises(SystemExit):
    device_check.main(['--rows=coreset,nosuch'])
  assert "unknown rows ['nosuch']" in capsys.readouterr().err


def test_a_row_past_its_limit_is_killed(device_check, tmp_path):
  log = device_check.Log(str(tmp_path / 'log'))
  args = device_check._parse(['--smoke'])  # pylint: disable=protected-access
  # BALD at smoke size imports jax and compiles a dropout network: far more than a second.
  record = device_check._run_in_process(  # pylint: disable=protected-access
      device_check.ROWS_BY_NAME['bald'], args, 1.0, log)
  assert record['status'] == 'timeout'
  assert record['error'] == 'killed after its limit of 1 s'
