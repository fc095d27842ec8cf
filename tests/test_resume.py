"""A property of the work directory: any sequence of runs, kills and resumes on one directory ends
with the records and the labeled pool of an uninterrupted run (hypothesis draws the sequences).

A kill is an exception no code of jal catches, raised at one of the places a process can die:
while the task model trains, inside orbax's checkpoint write (before its commit rename), between
the checkpoint and the files rendered from it, and halfway through writing results.jsonl (its
temporary file written, not yet renamed). tests/test_main.py SIGKILLs a real process."""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import run_config, settle_after_kill, strip_timings
from jal import checkpoint, experiment, results, workdir


class Killed(BaseException):
  """The process dies here (a BaseException: nothing in jal or orbax catches it)."""


def _kill_in_fit(patch, after):
  original = experiment.fit_task_model
  calls = []

  def fit(*args, **kwargs):
    calls.append(1)
    if len(calls) == after:
      raise Killed
    return original(*args, **kwargs)

  patch.setattr(experiment, 'fit_task_model', fit)


def _kill_in_checkpoint_write(patch, after):
  from orbax.checkpoint._src.path import async_path
  original = async_path.rename
  calls = []

  async def rename(src, dst):
    if os.path.basename(str(dst)).isdigit():  # the commit of a step: its tmp dir is complete
      calls.append(1)
      if len(calls) == after:
        raise Killed
    return await original(src, dst)

  patch.setattr(async_path, 'rename', rename)


def _kill_after_checkpoint(patch, after):
  original = results.render_round
  calls = []

  def render_round(*args, **kwargs):
    calls.append(1)
    if len(calls) == after:
      raise Killed
    return original(*args, **kwargs)

  patch.setattr(results, 'render_round', render_round)


def _kill_in_results_write(patch, after):
  original = os.replace
  calls = []

  def replace(src, dst, *args, **kwargs):
    if str(dst).endswith(workdir.RESULTS):
      calls.append(1)
      if len(calls) == after:
        raise Killed  # results.jsonl.tmp written, the rename never happens
    return original(src, dst, *args, **kwargs)

  patch.setattr(os, 'replace', replace)


KILLS = {'fit': _kill_in_fit, 'checkpoint write': _kill_in_checkpoint_write,
         'after checkpoint': _kill_after_checkpoint, 'results write': _kill_in_results_write}

# A step: ('run', rounds or None for all), or ('kill', where, at which call).
STEPS = st.one_of(
    st.tuples(st.just('run'), st.sampled_from([1, 2, None])),
    st.tuples(st.just('kill'), st.sampled_from(sorted(KILLS)), st.integers(1, 3)))


@pytest.fixture(scope='module')
def uninterrupted(finished_run):
  """The records and pool of the uninterrupted run of `run_config`."""
  with open(finished_run / workdir.RESULTS) as f:
    records = [json.loads(line) for line in f]
  ckpt = checkpoint.Checkpointer(str(finished_run / workdir.CHECKPOINTS))
  state = ckpt.latest()
  ckpt.close()
  return strip_timings(records), state.pool, state.stop_predictions


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(STEPS, min_size=1, max_size=3))
def test_runs_kills_and_resumes_end_as_the_uninterrupted_run(monkeypatch, uninterrupted, steps):
  expected_records, expected_pool, expected_stop = uninterrupted
  path = os.path.join(tempfile.mkdtemp(prefix='jal-resume-'), 'run')
  try:
    for step in steps:
      if step[0] == 'run':
        experiment.run(run_config(), path, rounds=step[1])
        continue
      with monkeypatch.context() as patch:
        KILLS[step[1]](patch, step[2])
        try:
          experiment.run(run_config(), path)
        except Killed:
          settle_after_kill()
    records = experiment.run(run_config(), path)
    assert strip_timings(records) == expected_records
    with open(os.path.join(path, workdir.RESULTS)) as f:
      assert strip_timings([json.loads(line) for line in f]) == expected_records
    ckpt = checkpoint.Checkpointer(os.path.join(path, workdir.CHECKPOINTS))
    latest = ckpt.latest()
    pool = latest.pool
    ckpt.close()
    # The stop set's last predictions, which the next round's kappa compares with.
    np.testing.assert_array_equal(latest.stop_predictions, expected_stop)
    np.testing.assert_array_equal(pool.labeled, expected_pool.labeled)
    np.testing.assert_array_equal(pool.oracle_labels, expected_pool.oracle_labels)
    leftovers = [n for n in os.listdir(os.path.join(path, workdir.CHECKPOINTS))
                 if not n.isdigit()]
    assert leftovers == []  # orbax's temporary directories of killed writes are gone
  finally:
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)
