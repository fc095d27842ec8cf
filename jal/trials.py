"""Several trials (seeds) of one experiment in lockstep, their task models fitted together.

A comparison runs every strategy over several seeds. Trials that differ in
the seed alone train the same task model on pools of one size, so on an
accelerator their fits can be one vmapped program (`jal.train.fit_trials`).
`run_trials` advances the trials round by round with the pieces of
`jal.experiment` (`set_up`, `fit_task_model`, `finish_round`) and fits
together the trials that allow it; each trial writes exactly the files
`jal.experiment.run` would.
"""

from __future__ import annotations

import time
from typing import Sequence

import ml_collections

from jal import experiment as experiment_lib, rng, train, workdir as workdir_lib
from jal.train import compile_time
from jal.errors import JalError
from jal.strategies.base import Fit


def _without_seed(config: ml_collections.ConfigDict) -> dict:
  out = workdir_lib.config_to_dict(config)
  out.pop('seed')
  return out


def fit_together(experiments: Sequence[experiment_lib.Experiment]) -> bool:
  """Whether the trials' task models can train as one vmapped fit.

  They can when every strategy fits with plain `jal.train.fit`
  (`jal.strategies.base.Strategy.plain_fit`) and the configs differ in the
  seed alone, without a per-seed imbalance (so the train images are the
  same); their pools then have one size at every round.
  """
  if len(experiments) < 2 or not all(e.strategy.plain_fit for e in experiments):
    return False
  first = experiments[0].config
  if first.dataset.imbalance.kind is not None:
    return False
  return all(_without_seed(e.config) == _without_seed(first) for e in experiments[1:])


def run_trials(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
               overwrite: bool = False, recover: bool = False) -> list[list[dict]]:
  """Runs (or resumes) several trials in lockstep, fitting their task models together.

  Each trial is `jal.experiment.run` of its config in its work directory,
  with the same results and files. At each round, the trials that
  `fit_together` allows and whose pools have one size train in one vmapped
  program; the others one after another.

  Returns:
    Each trial's records.

  Raises:
    JalError: as `jal.experiment.run`.
  """
  if any(c.oracle.name == 'human' for c in configs):
    raise JalError("seeds in lockstep need a simulated oracle; with config.oracle.name='human' "
                   'run one seed with jal.experiment.run (or python -m jal.main)')
  runs = []
  shared = {}  # one device copy of the images the trials have in common
  try:
    for c, w in zip(configs, workdirs):
      runs.append(experiment_lib.set_up(c, w, overwrite, recover, shared=shared))
    return _run_in_lockstep(runs)
  finally:
    for e, _ in runs:
      e.close()


def _run_in_lockstep(runs) -> list[list[dict]]:
  experiments = [e for e, _ in runs]
  states = [s for _, s in runs]
  together = fit_together(experiments)
  ends = [e.last_round(s, None) for e, s in runs]
  while True:
    active = [i for i, s in enumerate(states) if s.next_round < ends[i]]
    if not active:
      break
    start = time.perf_counter()
    with compile_time.measure() as compiled:
      labels = {i: experiments[i].labels(states[i].pool) for i in active}
      sizes = {states[i].pool.num_labeled for i in active}
      if together and len(active) > 1 and len(sizes) == 1:
        fitted = _fit_trials([experiments[i] for i in active], [states[i] for i in active],
                             [labels[i] for i in active])
      else:
        fitted = [experiment_lib.fit_task_model(experiments[i], states[i], states[i].next_round,
                                                labels[i]) for i in active]
    seconds = (time.perf_counter() - start) / len(active)
    for i, fit in zip(active, fitted):
      states[i] = experiment_lib.finish_round(experiments[i], states[i], states[i].next_round,
                                              labels[i], fit, seconds,
                                              compiled.seconds / len(active))
  return [s.records for s in states]


def _fit_trials(experiments, states, labels) -> list[Fit]:
  """One vmapped fit of the trials' task models (fresh, as `fit_task_model` starts them)."""
  first = experiments[0]
  round_ = states[0].next_round
  init = [experiment_lib.initial_train_state(e, s, round_) for e, s in zip(experiments, states)]
  keys = [rng.key(e.config.seed, 'task_train', round_) for e in experiments]
  trained, metrics = train.fit_trials(
      first.strategy.trainer, init, first.train_images, labels, [s.pool.labeled for s in states],
      epochs=first.config.train.epochs, keys=keys,
      description=f'round {round_} task model ({states[0].pool.num_labeled} labeled), '
                  f'{len(experiments)} trials together')
  return [Fit(s, m) for s, m in zip(trained, metrics)]
