"""Per-round checkpoints with orbax: everything needed to resume a run.

What the next round depends on is the pool (labeled indices in order, the
oracle's labels), the round number and the results so far; every random
stream is derived from ``(seed, purpose, round)`` (`jal.rng`), so that is the
whole RNG state. Networks retrained from scratch each round are not stored;
when the config warm-starts the task model, its variables are stored too.
Orbax writes each checkpoint to a temporary directory and renames it when
complete, so a run killed mid-save (even by SIGKILL) resumes from the last
complete round.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import jax

import numpy as np
import orbax.checkpoint as ocp

from jal.pool import Pool


@dataclasses.dataclass
class RunState:
  """The state between rounds.

  Attributes:
    next_round: the round to run next (0 for a fresh run).
    pool: labeled indices and oracle labels going into ``next_round``.
    records: the results of rounds ``0 .. next_round - 1``.
    task_variables: the last task model's variables (a pytree of arrays)
      when the next round warm-starts from them, else None.
  """
  next_round: int
  pool: Pool
  records: list[dict]
  task_variables: Any = None


class Checkpointer:
  """Saves a `RunState` after each round under ``<workdir>/checkpoints``."""

  def __init__(self, directory: str, max_to_keep: int = 2):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                           enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options,
                                          item_names=('pool', 'meta', 'task'))

  def save(self, state: RunState) -> None:
    pool = {'labeled': np.asarray(state.pool.labeled, np.int64),
            'oracle_labels': np.asarray(state.pool.oracle_labels, np.int32)}
    has_task = state.task_variables is not None
    meta = {'next_round': state.next_round, 'num_train': state.pool.num_train,
            'records': state.records, 'has_task_variables': has_task}
    items = dict(pool=ocp.args.StandardSave(pool), meta=ocp.args.JsonSave(meta))
    if has_task:
      items['task'] = ocp.args.StandardSave(jax.device_get(state.task_variables))
    self._manager.save(state.next_round, args=ocp.args.Composite(**items))
    self._manager.wait_until_finished()

  def latest(self) -> RunState | None:
    """The last complete checkpoint, or None for a fresh work directory."""
    step = self._manager.latest_step()
    if step is None:
      return None
    meta = self._manager.restore(step, args=ocp.args.Composite(
        meta=ocp.args.JsonRestore()))['meta']
    items = dict(pool=ocp.args.StandardRestore())
    if meta.get('has_task_variables'):
      items['task'] = ocp.args.StandardRestore()
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    pool = restored['pool']
    return RunState(next_round=int(meta['next_round']),
                    pool=Pool(int(meta['num_train']), np.asarray(pool['labeled'], np.int64),
                              np.asarray(pool['oracle_labels'], np.int32)),
                    records=list(meta['records']), task_variables=restored.get('task'))

  def close(self) -> None:
    self._manager.close()
