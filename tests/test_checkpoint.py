"""Tests of jal.checkpoint on checkpoints orbax wrote, then damaged on disk: each damage is named
(one line, the directory untouched), --recover resumes from the newest intact checkpoint (moving
the damaged one aside, never deleting it) and ends with the uninterrupted run's records; a full
disk while saving is one line and the run resumes."""

from __future__ import annotations

import errno
import glob
import json
import os

import numpy as np
import pytest

from conftest import copy_run, run_config, snapshot, strip_timings
from jal import checkpoint, experiment, workdir
from jal.errors import JalError


def _truncate(path):
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _garble(path):
  with open(path, 'r+b') as f:
    f.write(b'\x00garbage\xff' * 4)


def _pool_data_file(step_dir):
  files = [p for p in glob.glob(os.path.join(step_dir, 'pool', 'd', '*')) if os.path.isfile(p)]
  assert files, 'orbax wrote no pool data file'
  return files[0]


def _edit_meta(step_dir, **changes):
  """Rewrites the JSON meta item as valid JSON with other values: silent damage."""
  path = os.path.join(step_dir, 'meta', 'metadata')
  with open(path) as f:
    meta = json.load(f)
  meta.update(changes)
  with open(path, 'w') as f:
    json.dump(meta, f)


DAMAGE = {
    'truncated meta': lambda d: _truncate(os.path.join(d, 'meta', 'metadata')),
    'garbled meta': lambda d: _garble(os.path.join(d, 'meta', 'metadata')),
    'deleted pool metadata': lambda d: os.remove(os.path.join(d, 'pool', '_METADATA')),
    'truncated pool manifest': lambda d: _truncate(os.path.join(d, 'pool', 'manifest.ocdbt')),
    'garbled pool array file': lambda d: _garble(_pool_data_file(d)),
    'deleted pool array file': lambda d: os.remove(_pool_data_file(d)),
    'pool digest off': lambda d: _edit_meta(d, pool_sha256='0' * 64),
    'records cut': lambda d: _edit_meta(d, records=[]),
}


@pytest.mark.parametrize('damage', DAMAGE, ids=list(DAMAGE))
def test_each_damage_is_named_and_the_directory_left_as_it_was(tmp_path, finished_run, damage):
  run = copy_run(finished_run, tmp_path / 'run')
  DAMAGE[damage](str(run / 'checkpoints' / '3'))
  before = snapshot(run)
  with pytest.raises(JalError) as info:
    experiment.run(run_config(), str(run))
  message = str(info.value)
  assert '\n' not in message
  assert message.startswith(f'checkpoint {run}/checkpoints/3 is damaged (')
  assert '--recover' in message and '--overwrite' in message
  assert snapshot(run) == before


def test_recover_resumes_from_the_newest_intact_checkpoint_and_keeps_the_damaged(
    tmp_path, finished_run, capsys):
  run = copy_run(finished_run, tmp_path / 'run')
  expected = [json.loads(line) for line in open(run / workdir.RESULTS)]
  DAMAGE['truncated meta'](str(run / 'checkpoints' / '3'))
  damaged_bytes = snapshot(run / 'checkpoints' / '3')
  records = experiment.run(run_config(), str(run), recover=True)
  out = capsys.readouterr().out
  assert 'is damaged' in out and 'resuming from checkpoint 2' in out
  assert strip_timings(records) == strip_timings(expected)  # round 2 again, the same
  kept = os.listdir(run / workdir.DAMAGED)
  assert len(kept) == 2 and any(k.startswith('checkpoint-3-') for k in kept)
  checkpoint_copy = next(k for k in kept if k.startswith('checkpoint-3-'))
  assert snapshot(run / workdir.DAMAGED / checkpoint_copy) == damaged_bytes
  results_copy = next(k for k in kept if k.startswith('results-'))
  assert len(open(run / workdir.DAMAGED / results_copy).readlines()) == 3
  assert experiment.run(run_config(), str(run)) == records  # a normal resume from here on


def test_results_newer_than_the_checkpoints_are_refused_then_recovered(tmp_path, finished_run):
  run = copy_run(finished_run, tmp_path / 'run')
  import shutil
  shutil.rmtree(run / 'checkpoints' / '3')  # the newest checkpoint lost
  before = snapshot(run)
  with pytest.raises(JalError, match='holds 3 rounds but the newest checkpoint only 2'):
    experiment.run(run_config(), str(run))
  assert snapshot(run) == before
  assert len(experiment.run(run_config(), str(run), recover=True)) == 3


def test_a_checkpoint_of_another_config_is_refused(finished_run):
  ckpt = checkpoint.Checkpointer(str(finished_run / 'checkpoints'),
                                 config_fingerprint=workdir.fingerprint(run_config(seed=9)))
  with pytest.raises(JalError, match='written by a run of another config'):
    ckpt.latest()
  ckpt.close()
  ckpt = checkpoint.Checkpointer(str(finished_run / 'checkpoints'),
                                 config_fingerprint=workdir.fingerprint(run_config()))
  state = ckpt.latest()
  ckpt.close()
  assert state.next_round == 3 and state.pool.num_labeled == 40
  np.testing.assert_array_equal(np.unique(state.pool.labeled).size, 40)


def test_a_full_disk_while_saving_is_one_line_and_the_run_resumes(tmp_path, finished_run,
                                                                   monkeypatch):
  run = copy_run(finished_run, tmp_path / 'run')
  import shutil
  shutil.rmtree(run / 'checkpoints' / '3')
  lines = (run / workdir.RESULTS).read_text().splitlines(keepends=True)
  (run / workdir.RESULTS).write_text(''.join(lines[:2]))  # as a run killed after round 1

  def no_space(self, step, *args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(run / 'checkpoints'))

  import orbax.checkpoint as ocp
  with monkeypatch.context() as patch:
    patch.setattr(ocp.CheckpointManager, 'save', no_space)
    with pytest.raises(JalError, match=r'could not write checkpoint .*/checkpoints/3 \(No '
                                       r'space left on device\); free disk space') as info:
      experiment.run(run_config(), str(run))
  assert '\n' not in str(info.value)
  assert workdir.checkpoint_steps(str(run)) == (2,)
  assert len(experiment.run(run_config(), str(run))) == 3
