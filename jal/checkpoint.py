"""Per-round checkpoints with orbax: everything needed to resume a run.

What the next round depends on is the pool (labeled indices in order, the
oracle's labels), the round number, the results so far and the last task
model's predictions on the stop set (`jal.stopping`); every random
stream is derived from ``(seed, purpose, round)`` (`jal.rng`), so that is the
whole RNG state. Networks retrained from scratch each round are not stored;
when the config warm-starts the task model, its variables are stored too.
Orbax writes each checkpoint to a temporary directory and renames it when
complete, so a run killed mid-save (even by SIGKILL) resumes from the last
complete round.

A checkpoint also records the fingerprint of its config and a SHA-256 of its
pool, and `Checkpointer.restore` checks both: a checkpoint damaged on disk
(a truncated or overwritten file) is named as such, never resumed from, and
one of another run's config is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from typing import Any

import jax

import numpy as np
import orbax.checkpoint as ocp

from jal.errors import JalError
from jal.pool import Pool


class DamagedCheckpoint(JalError):
  """A checkpoint that cannot be restored or fails its checks; names its directory."""

  def __init__(self, path: str, reason: str):
    super().__init__(f'checkpoint {path} is damaged ({reason})')
    self.path = path


@dataclasses.dataclass
class RunState:
  """The state between rounds.

  Attributes:
    next_round: the round to run next (0 for a fresh run).
    pool: labeled indices and oracle labels going into ``next_round``.
    records: the results of rounds ``0 .. next_round - 1``.
    task_variables: the last task model's variables (a pytree of arrays)
      when the next round warm-starts from them or a person labels the
      queries (`jal.predict` uses them), else None.
    pending: the query waiting for a person's answers (`jal.human.Pending`
      as a JSON dict), or None.
    imports: one JSON dict per label file imported (`jal.human`), in order.
    data_digest: a digest of the train split's identity where indices name
      files (a labeling project's image paths), checked on every start.
    stop_predictions: int32 ``[S]``, the last round's task model's classes
      on the stop set (`jal.stopping`), which the next round's agreement
      compares with; None before round 0 or without the stopping signals.
  """
  next_round: int
  pool: Pool
  records: list[dict]
  task_variables: Any = None
  pending: dict | None = None
  imports: list[dict] = dataclasses.field(default_factory=list)
  data_digest: str | None = None
  stop_predictions: np.ndarray | None = None

  @property
  def step(self) -> int:
    """The checkpoint step: rounds done plus label files imported, so that
    every change of the state is a new step (a save never replaces one)."""
    return self.next_round + len(self.imports)


def _answers(oracle_labels: np.ndarray) -> np.ndarray:
  """The oracle's answers in their stored dtype: int32 classes ``[L]``, or uint8 masks ``[L, H, W]``."""
  oracle_labels = np.asarray(oracle_labels)
  return oracle_labels.astype(np.int32 if oracle_labels.ndim == 1 else np.uint8, copy=False)


def _pool_digest(pool: Pool) -> str:
  digest = hashlib.sha256(np.ascontiguousarray(pool.labeled, np.int64).tobytes())
  digest.update(np.ascontiguousarray(_answers(pool.oracle_labels)).tobytes())
  if pool.excluded.size:  # absent from the digests of runs without exclusions
    digest.update(b'excluded')
    digest.update(np.ascontiguousarray(pool.excluded, np.int64).tobytes())
  return digest.hexdigest()


def _reason(e: BaseException) -> str:
  """What a one-line message can show of a library's error: the operating
  system's error where tensorstore reports one, else its first line, shortened."""
  if isinstance(e, OSError) and e.errno:
    return e.strerror or os.strerror(e.errno)
  text = str(e).strip()
  code = re.search(r"os_error_code='?(\d+)", text)
  if code:
    return os.strerror(int(code.group(1)))
  text = text.splitlines()[0] if text else ''
  text = text if len(text) <= 100 else text[:97] + '...'
  return f'{type(e).__name__}: {text}' if text else type(e).__name__


class Checkpointer:
  """Saves a `RunState` after each round under ``<workdir>/checkpoints``.

  Args:
    directory: the checkpoints directory.
    config_fingerprint: `jal.workdir.fingerprint` of the run's config,
      stored with each checkpoint and checked on restore (None: not checked).
    max_to_keep: the newest checkpoints kept.
  """

  def __init__(self, directory: str, config_fingerprint: str | None = None,
               max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    self.config_fingerprint = config_fingerprint
    self.max_to_keep = max_to_keep
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    # Temporary directories of a save that was killed are orbax's own, and go.
    options = ocp.CheckpointManagerOptions(max_to_keep=self.max_to_keep, create=True,
                                           enable_async_checkpointing=False,
                                           cleanup_tmp_directories=True)
    return ocp.CheckpointManager(self.directory, options=options,
                                 item_names=('pool', 'meta', 'task'))

  def reopen(self) -> None:
    """Re-reads the directory (after a checkpoint was moved away)."""
    self._manager.close()
    self._manager = self._open()

  def save(self, state: RunState) -> None:
    """Writes ``state`` as checkpoint ``state.step``.

    Raises:
      JalError: the write failed (a full disk, permissions), naming the
        directory; the previous checkpoints are intact.
    """
    pool = {'labeled': np.asarray(state.pool.labeled, np.int64),
            'oracle_labels': _answers(state.pool.oracle_labels)}
    if state.pool.excluded.size:
      pool['excluded'] = np.asarray(state.pool.excluded, np.int64)
    has_task = state.task_variables is not None
    meta = {'next_round': state.next_round, 'num_train': state.pool.num_train,
            'records': state.records, 'has_task_variables': has_task,
            'pool_sha256': _pool_digest(state.pool),
            'config_fingerprint': self.config_fingerprint}
    if state.pending is not None or state.imports or state.data_digest:
      meta.update(pending=state.pending, imports=state.imports, data_digest=state.data_digest)
    # Orbax cannot save an empty array: a pool with nothing labeled yet (round 0's
    # query to a person) has no pool item; `restore` reads num_labeled.
    meta['num_labeled'] = state.pool.num_labeled
    if state.stop_predictions is not None:  # a few thousand small ints: JSON is enough
      meta['stop_predictions'] = np.asarray(state.stop_predictions, np.int32).tolist()
    items = dict(meta=ocp.args.JsonSave(meta))
    if state.pool.num_labeled:
      items['pool'] = ocp.args.StandardSave(pool)
    if has_task:
      items['task'] = ocp.args.StandardSave(jax.device_get(state.task_variables))
    try:
      self._manager.save(state.step, args=ocp.args.Composite(**items))
      self._manager.wait_until_finished()
    except Exception as e:  # orbax and tensorstore raise several types for one failed write
      raise JalError(f'could not write checkpoint {self.step_path(state.step)} '
                     f'({_reason(e)}); free disk space or fix the permissions, then run the '
                     'same command again: it resumes from the last checkpoint') from None

  def steps(self) -> list[int]:
    """The finished checkpoints' steps (`RunState.step`), ascending."""
    return sorted(self._manager.all_steps())

  def step_path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def restore(self, step: int) -> RunState:
    """Checkpoint ``step``, checked.

    Raises:
      DamagedCheckpoint: a file of it cannot be read or decoded, or its pool
        does not match its recorded digest or breaks the pool's invariants.
      JalError: it belongs to a run of another config.
    """
    path = self.step_path(step)
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(
          meta=ocp.args.JsonRestore()))['meta']
      items = {}
      if meta.get('num_labeled', 1):  # absent from older checkpoints, never empty
        items['pool'] = ocp.args.StandardRestore()
      if meta.get('has_task_variables'):
        items['task'] = ocp.args.StandardRestore()
      restored = self._manager.restore(step, args=ocp.args.Composite(**items)) if items else {}
      empty = {'labeled': np.zeros(0, np.int64), 'oracle_labels': np.zeros(0, np.int32)}
      arrays = restored.get('pool') or empty
      pool = Pool(int(meta['num_train']), np.asarray(arrays['labeled'], np.int64),
                  _answers(arrays['oracle_labels']),
                  np.asarray(arrays.get('excluded', np.zeros(0)), np.int64))
      records = list(meta['records'])
      next_round = int(meta['next_round'])
      pending, imports = meta.get('pending'), list(meta.get('imports') or [])
      data_digest = meta.get('data_digest')
      stop = meta.get('stop_predictions')
      stop = None if stop is None else np.asarray(stop, np.int32)
    except Exception as e:  # a damaged file fails in orbax, tensorstore or json
      raise DamagedCheckpoint(path, _reason(e)) from None
    if meta.get('pool_sha256') != _pool_digest(pool):
      raise DamagedCheckpoint(path, 'its pool does not match the digest it was saved with')
    try:
      pool.check()
    except AssertionError as e:
      raise DamagedCheckpoint(path, str(e)) from None
    if len(records) != next_round or next_round + len(imports) != step:
      raise DamagedCheckpoint(path, f'it holds {len(records)} records and {len(imports)} '
                              f'imports for step {step}')
    stored = meta.get('config_fingerprint')
    if self.config_fingerprint is not None and stored != self.config_fingerprint:
      raise JalError(f'checkpoint {path} was written by a run of another config than the work '
                     "directory's jal_run.json; restore the matching jal_run.json, or pass "
                     "--overwrite to delete that run (jal's files only)")
    return RunState(next_round=next_round, pool=pool, records=records,
                    task_variables=restored.get('task'), pending=pending, imports=imports,
                    data_digest=data_digest, stop_predictions=stop)

  def latest(self) -> RunState | None:
    """The newest checkpoint, or None for a fresh work directory.

    Raises:
      DamagedCheckpoint, JalError: as `restore`.
    """
    steps = self.steps()
    return self.restore(steps[-1]) if steps else None

  def close(self) -> None:
    self._manager.close()
