"""Tests of jal.workdir and jal.dirlock: jal only ever deletes or rewrites what it wrote, refuses
every directory state it cannot continue without guessing (one line, the directory byte-identical
afterwards), rewrites everything rendered from the checkpoints, and lets one process at a time
use a directory (a killed process's lock is gone with it)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import copy_run, run_config, snapshot
from jal import dirlock, experiment, workdir
from jal.errors import JalError


def refused(path, config, match, **kwargs):
  """Runs ``config`` in ``path``, expecting a one-line refusal that leaves ``path`` as it was."""
  before = snapshot(path)
  with pytest.raises(JalError, match=match) as info:
    experiment.run(config, str(path), **kwargs)
  assert '\n' not in str(info.value)
  assert snapshot(path) == before
  return str(info.value)


# ------------------------------------------------------------ whose directory it is


def test_a_new_run_writes_its_marker_first_with_the_version_and_the_config(tmp_path):
  config = run_config()
  inspection = workdir.inspect(str(tmp_path / 'run'), config)
  assert not inspection.exists and not inspection.marked
  os.mkdir(tmp_path / 'run')
  workdir.start(inspection, config)
  assert os.listdir(tmp_path / 'run') == [workdir.MARKER]
  marker = json.loads((tmp_path / 'run' / workdir.MARKER).read_text())
  from jal import __version__
  assert marker['jal_version'] == __version__
  assert marker['config'] == workdir.config_to_dict(config)


def test_results_jsonl_that_jal_did_not_write_is_refused_not_emptied(tmp_path):
  # Found: a results.jsonl without config.json was emptied to 0 bytes.
  (tmp_path / 'results.jsonl').write_text('{"mine": 1}\n')
  message = refused(tmp_path, run_config(), 'holds results.jsonl but no jal_run.json')
  assert 'move results.jsonl out' in message
  refused(tmp_path, run_config(), 'holds results.jsonl but no jal_run.json', overwrite=True)


def test_a_directory_of_someone_elses_files_is_refused_even_with_overwrite(tmp_path):
  # Found: --overwrite on a directory that is not a jal run deleted checkpoints/important.pt.
  (tmp_path / 'checkpoints').mkdir()
  (tmp_path / 'checkpoints' / 'important.pt').write_bytes(b'weights')
  (tmp_path / 'notes.txt').write_text('mine')
  for overwrite in (False, True):
    refused(tmp_path, run_config(), 'is not empty and is not a jal run', overwrite=overwrite)


def test_overwrite_deletes_jals_files_and_nothing_else(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  (run / 'notes.txt').write_text('my notes beside the run')
  inspection = workdir.inspect(str(run), run_config(), overwrite=True)
  assert set(inspection.delete) == {workdir.MARKER, workdir.CHECKPOINTS, workdir.RESULTS,
                                    workdir.PLOT, workdir.TENSORBOARD}
  workdir.start(inspection, run_config())
  assert sorted(os.listdir(run)) == [workdir.MARKER, 'notes.txt']
  assert (run / 'notes.txt').read_text() == 'my notes beside the run'


def test_overwrite_refuses_a_file_jal_did_not_write_inside_its_directories(tmp_path,
                                                                          finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  (run / 'checkpoints' / 'important.pt').write_bytes(b'weights')
  message = refused(run, run_config(), 'holds checkpoints/important.pt, which jal did not '
                    'write', overwrite=True)
  assert 'move it out' in message


def test_a_deleted_marker_is_refused_not_continued_with_another_config(tmp_path, finished_run):
  # Found: with config.json deleted, a rerun with another strategy continued the old run.
  run = copy_run(finished_run, tmp_path / 'run')
  os.remove(run / workdir.MARKER)
  for config in (run_config(), run_config(**{'strategy.name': 'entropy'})):
    refused(run, config, 'holds checkpoints/ but no jal_run.json')
    refused(run, config, 'holds checkpoints/ but no jal_run.json', overwrite=True)


def test_records_without_checkpoints_are_refused_not_restarted(tmp_path, finished_run):
  # Found: with checkpoints/ deleted, the run restarted from round 0 over its records.
  run = copy_run(finished_run, tmp_path / 'run')
  shutil.rmtree(run / 'checkpoints')
  message = refused(run, run_config(), 'holds 3 rounds in results.jsonl but no checkpoint')
  assert 'restore checkpoints/' in message and '--overwrite' in message


def test_a_run_of_another_config_is_refused_naming_the_keys(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  refused(run, run_config(**{'strategy.name': 'entropy', 'seed': 4}),
          r'different config \(differs in seed, strategy.name\)')


def test_a_damaged_marker_is_named_and_overwrite_still_works(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  (run / workdir.MARKER).write_text('{"config": ')
  refused(run, run_config(), r'jal_run.json is damaged \(JSONDecodeError\)')
  inspection = workdir.inspect(str(run), run_config(), overwrite=True)
  assert workdir.MARKER in inspection.delete


def test_a_run_of_an_older_jal_is_refused_and_not_deleted(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  os.rename(run / workdir.MARKER, run / workdir.LEGACY_CONFIG)
  for overwrite in (False, True):
    refused(run, run_config(), 'holds a run of an older jal', overwrite=overwrite)


def test_a_file_or_an_unwritable_directory_is_refused(tmp_path, monkeypatch):
  (tmp_path / 'f').write_text('x')
  refused(tmp_path / 'f', run_config(), 'is a file; give a directory')
  assert (tmp_path / 'f').read_text() == 'x'
  monkeypatch.setattr(os, 'access', lambda path, mode: False)  # root may write anywhere
  refused(tmp_path, run_config(), 'is not writable by you')


def test_a_run_that_never_finished_a_round_takes_a_corrected_config(tmp_path):
  # A run stopped before round 0 ended leaves only its marker and empty renderings:
  # the corrected command starts there, without --overwrite.
  run = tmp_path / 'run'
  os.mkdir(run)
  workdir.start(workdir.inspect(str(run), run_config()), run_config())
  (run / workdir.RESULTS).write_text('')
  corrected = run_config(**{'seed': 1})
  inspection = workdir.inspect(str(run), corrected)
  assert not inspection.marked and set(inspection.delete) == {workdir.MARKER, workdir.RESULTS}
  workdir.start(inspection, corrected)
  assert json.loads((run / workdir.MARKER).read_text())['config']['seed'] == 1


def test_a_refused_start_in_a_new_directory_leaves_no_directory(tmp_path):
  with pytest.raises(JalError, match='num_rounds=0'):
    experiment.run(run_config(num_rounds=0), str(tmp_path / 'new'))
  assert not (tmp_path / 'new').exists()


# ------------------------------------------------------ rendered from the checkpoints


def test_a_resumed_run_renders_results_plot_and_tensorboard_again(tmp_path, finished_run):
  # A run killed between its checkpoint and its rendering: the renderings are gone.
  run = copy_run(finished_run, tmp_path / 'run')
  expected = (run / workdir.RESULTS).read_text()
  (run / workdir.RESULTS).write_text(expected.splitlines(keepends=True)[0])
  os.remove(run / workdir.PLOT)
  shutil.rmtree(run / workdir.TENSORBOARD)
  records = experiment.run(run_config(), str(run))
  assert len(records) == 3
  assert (run / workdir.RESULTS).read_text() == expected
  assert (run / workdir.PLOT).stat().st_size > 1000
  from tensorboard.backend.event_processing import event_accumulator
  events = event_accumulator.EventAccumulator(str(run / workdir.TENSORBOARD))
  events.Reload()
  steps = [e.step for e in events.Tensors('test_accuracy')]
  assert steps == [r['num_labeled'] for r in records]  # each round once


# ---------------------------------------------------------------- one process per directory


def test_a_directory_in_use_is_refused_while_the_first_process_holds_it(tmp_path,
                                                                        finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  first, _ = experiment.set_up(run_config(), str(run))
  try:
    refused(run, run_config(), 'is in use by another jal process')
  finally:
    first.close()
  assert len(experiment.run(run_config(), str(run))) == 3  # released


_HOLD = ('import sys; sys.path.insert(0, sys.argv[2]); from jal import dirlock; '
         'dirlock.DirectoryLock(sys.argv[1]).acquire(); print("held", flush=True); '
         'sys.stdin.read()')


def test_the_lock_of_a_killed_process_is_gone_with_it(tmp_path):
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  holder = subprocess.Popen([sys.executable, '-c', _HOLD, str(tmp_path), repo],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == 'held'
    with pytest.raises(JalError, match=rf'in use by another jal process( \(process '
                                       rf'{holder.pid}\))?;'):
      dirlock.DirectoryLock(str(tmp_path)).acquire()
  finally:
    holder.send_signal(signal.SIGKILL)
    holder.wait()
  lock = dirlock.DirectoryLock(str(tmp_path))
  lock.acquire()  # the kernel dropped the killed process's lock
  assert lock.held
  lock.release()
  assert os.listdir(tmp_path) == []  # the lock is no file


def test_set_up_releases_the_lock_when_it_fails(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  with pytest.raises(JalError):
    experiment.run(run_config(**{'evaluation.ece_bins': 0}), str(run))
  lock = dirlock.DirectoryLock(str(run))
  lock.acquire()
  lock.release()
