"""The active-learning experiment loop.

    pool ─► fit the task model ─► evaluate on the test split
         ─► query `budget` unlabeled indices ─► the oracle labels them
         ─► pool' (checkpointed, logged) ─► next round

`run` is the loop, top to bottom: `set_up` (everything that can reject the
config runs before the work directory is touched), then per round
`fit_task_model` and `finish_round`. Everything heavy is a compiled step
(`jal.train`, the strategies' scoring functions). The loop owns the pool
(NumPy index arrays) and nothing else that carries across rounds.
`jal.trials` runs several seeds in lockstep with the same pieces.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jal import checkpoint, checks, data, dirlock, initial_pools, metrics as metrics_lib
from jal import segmentation_metrics as seg_metrics
from jal import oracle as oracle_lib, pool as pool_lib, results, rng, sharding, stopping
from jal import strategies
from jal import workdir as workdir_lib
from jal.data import corruptions, imbalance as imbalance_lib, project as project_lib, transforms
from jal.errors import JalError
from jal.human import query as query_lib, session as human_session
from jal.strategies.base import Fit, RoundContext, Strategy, TaskModel
from jal.task import Task, make_task
from jal.train import TrainState, compile_time

# ------------------------------------------------------------------ set-up ----


def load_data(config: ml_collections.ConfigDict, project: project_lib.Project | None = None
              ) -> tuple[data.Dataset, dict[str, np.ndarray]]:
  """The config's dataset and the optional evaluation sets.

  A labeling project (``config.dataset.name='project'``, `jal.data.project`)
  is read from ``project`` (read again when None) and has no evaluation sets.

  The dataset is imbalanced by ``config.dataset.imbalance`` (train split;
  `jal.data.imbalance`), then shrunk to ``max_train`` / ``max_test`` if set,
  without the classes held out by ``config.evaluation.ood_classes``.

  Returns:
    ``(dataset, sets)``; ``sets`` holds uint8 ``[m, H, W, C]`` images:
    ``'ood'`` when ``config.evaluation.ood_dataset`` (that dataset's test
    split, converted to the dataset's image shape, a seeded random subset of
    ``ood_max_examples``, None: as many as the test split) or
    ``ood_classes`` (the held-out classes' test images) is set, and
    ``'blurred'`` (the test split with `jal.data.corruptions.gaussian_blur`
    of ``blur_severity`` from the ``blur_benchmark`` table) when
    ``blur_severity`` is set.

  Raises:
    JalError: an unknown or missing dataset, bad held-out classes, both OOD
      sources at once, or a severity outside 1..5.
  """
  cfg, evaluation = config.dataset, config.evaluation
  if cfg.name == 'project':
    return _project_data(config, project), {}
  if cfg.name in data.SEGMENTATION:
    unsupported = [key for key, value in (
        ('dataset.imbalance.kind', cfg.imbalance.kind),
        ('evaluation.ood_dataset', evaluation.ood_dataset),
        ('evaluation.ood_classes', evaluation.ood_classes),
        ('evaluation.blur_severity', evaluation.blur_severity)) if value]
    if unsupported:
      raise JalError(f'config.{unsupported[0]} is defined for classification (a class per '
                     f'image); unset it for the segmentation dataset {cfg.name!r}')
  dataset = data.load(cfg.name, image_size=cfg.get('image_size'), path=cfg.get('path'),
                      split_seed=cfg.get('split_seed', 0), classes=cfg.get('classes'),
                      manual_dir=cfg.get('manual_dir'))
  if cfg.imbalance.kind is not None:
    # Drawn per seed: each trial has its own imbalanced split (MAL, Sec. 4.1).
    params = {k: v for k, v in cfg.imbalance.items() if k != 'kind'}
    dataset = imbalance_lib.imbalance(dataset, cfg.imbalance.kind,
                                      rng.numpy_rng(config.seed, 'imbalance'), **params)
  if cfg.get('max_train') or cfg.get('max_test'):
    dataset = data.subsample(dataset, cfg.get('max_train'), cfg.get('max_test'),
                             seed=cfg.get('split_seed', 0))
  sets = {}
  if evaluation.ood_classes and evaluation.ood_dataset:
    raise JalError('set config.evaluation.ood_dataset or config.evaluation.ood_classes, not '
                   'both: they are two sources of the OOD set')
  if evaluation.ood_classes:
    dataset, sets['ood'] = transforms.hold_out_classes(dataset, evaluation.ood_classes)
  elif evaluation.ood_dataset:
    other = data.load(evaluation.ood_dataset)
    size = min(evaluation.ood_max_examples or dataset.test_labels.size, other.test_labels.size)
    chosen = np.sort(rng.numpy_rng(config.seed, 'ood_subset').choice(
        other.test_labels.size, size, replace=False))
    sets['ood'] = transforms.match_image_shape(other.test_images[chosen], dataset.image_shape)
  if evaluation.blur_severity is not None:
    try:
      sets['blurred'] = corruptions.gaussian_blur(dataset.test_images, evaluation.blur_severity,
                                                  benchmark=evaluation.blur_benchmark)
    except ValueError as e:
      raise JalError(f'config.evaluation.blur_severity / blur_benchmark: {e}') from None
  return dataset, sets


def _project_data(config: ml_collections.ConfigDict,
                  project: project_lib.Project | None) -> data.Dataset:
  cfg, evaluation = config.dataset, config.evaluation
  unsupported = [key for key, value in (
      ('dataset.imbalance.kind', cfg.imbalance.kind), ('dataset.max_train', cfg.get('max_train')),
      ('dataset.max_test', cfg.get('max_test')), ('evaluation.ood_dataset', evaluation.ood_dataset),
      ('evaluation.ood_classes', evaluation.ood_classes),
      ('evaluation.blur_severity', evaluation.blur_severity)) if value]
  if unsupported:
    raise JalError(f'config.{unsupported[0]} is for the simulated datasets; a labeling project '
                   'is used as it is: unset it')
  project = project or project_lib.read_project(cfg.path, cfg.classes,
                                                masks=config.get('segmentation') is not None)
  return project_lib.to_dataset(project, cfg.image_size)


def initial_state(config: ml_collections.ConfigDict, pool_data: data.PoolData,
                  oracle: oracle_lib.Oracle, initial_size: int,
                  mesh: jax.sharding.Mesh | None = None,
                  task: Task | None = None) -> checkpoint.RunState:
  """Round 0's pool, labeled by the oracle.

  Chosen by ``config.initial_pool.name`` (`jal.initial_pools`: random, or
  from a self-supervised model trained on the whole pool), seeded by
  ``config.seed`` alone, so every strategy of a trial starts from the same
  pool. Only examples outside ``config.initial_pool.exclude_classes`` (by the
  oracle's ground truth) are eligible: PAL's biased-pool scenario (Bhatnagar
  et al. 2021, Sec. 4.3). For segmentation ``config.segmentation.biased_pool``
  says what is left out: ``'annotations'`` (the paper's App. A: "we removed
  the annotations of the bus and the train classes from the initial labeled
  data pool"; any image may be drawn, and round 0's masks have those
  classes' pixels as void) or ``'images'`` (only images with no pixel of
  those classes, `jal.task.Task.contains`). ``mesh``: where the
  self-supervised model trains (None: every device); ``task``: the task
  (None: classification).
  """
  everything = np.arange(pool_data.num_train)
  empty = pool_lib.Pool(pool_data.num_train, np.zeros(0, np.int64), np.zeros(0, np.int32))
  if oracle.asks_a_person:
    known = everything[oracle.known(everything)]
    if known.size:  # the labeling project's labeled/ images are round 0's pool
      return checkpoint.RunState(0, empty.add(known, oracle.true_labels(known)), [])
  exclude = np.asarray(tuple(config.initial_pool.exclude_classes), np.int64)
  void_excluded = biased_pool_mode(config, task) == 'annotations'
  if void_excluded:
    eligible = everything
  else:
    holds = (task.contains if task is not None else np.isin)(oracle.true_labels(everything),
                                                             exclude)
    eligible = everything[~holds]
  indices = _initial_pool(config, pool_data, mesh, initial_size, eligible)
  if oracle.asks_a_person:  # round 0's pool is a query to the person
    unknown = (None,) * indices.size
    pending = query_lib.Pending(0, tuple(int(i) for i in indices), unknown, unknown, unknown)
    return checkpoint.RunState(0, empty, [], pending=pending.to_json())
  answers = oracle.label(indices, 0)
  if void_excluded and exclude.size:  # the excluded classes' annotations removed
    answers = np.where(np.isin(answers, exclude), seg_metrics.IGNORE, answers).astype(np.uint8)
  return checkpoint.RunState(next_round=0, pool=empty.add(indices, answers), records=[])


# Initial pools chosen in this process, by everything they depend on: the
# strategies of a comparison's seed share one, so a self-supervised network
# behind it trains once per seed, not once per strategy.
_INITIAL_POOLS: dict[str, np.ndarray] = {}


def _initial_pool(config: ml_collections.ConfigDict, pool_data: data.PoolData,
                  mesh: jax.sharding.Mesh | None, initial_size: int,
                  eligible: np.ndarray) -> np.ndarray:
  """`jal.initial_pools.select_initial_pool`, remembered in this process by its inputs:
  the seed, ``config.initial_pool``, ``config.dataset``, the scoring batch size,
  the size, the eligible examples and the images' digest (the random pool,
  cheaper to draw again than to digest, is not remembered)."""
  select = functools.partial(initial_pools.select_initial_pool, config, pool_data,
                             mesh or sharding.make_mesh(), initial_size, eligible)
  if config.initial_pool.name == 'random':  # cheaper than the digest of the images
    return select()
  images = np.ascontiguousarray(pool_data.images)
  inputs = json.dumps({'seed': config.seed, 'initial_pool': config.initial_pool.to_dict(),
                       'dataset': config.dataset.to_dict(),
                       'eval_batch_size': config.get('eval_batch_size'), 'size': initial_size,
                       'eligible': hashlib.sha256(np.asarray(eligible, np.int64)).hexdigest(),
                       'images': (images.shape, hashlib.sha256(images).hexdigest())},
                      sort_keys=True, default=str)
  if inputs not in _INITIAL_POOLS:
    _INITIAL_POOLS[inputs] = select()
  return _INITIAL_POOLS[inputs].copy()


BIASED_POOL_MODES = ('annotations', 'images')


def biased_pool_mode(config: ml_collections.ConfigDict, task: Task | None) -> str:
  """``'images'`` (classification, or ``config.segmentation.biased_pool``) or ``'annotations'``.

  Raises:
    JalError: an unknown ``config.segmentation.biased_pool``.
  """
  if task is None or task.kind != 'segmentation':
    return 'images'
  mode = config.segmentation.get('biased_pool', 'annotations')
  if mode not in BIASED_POOL_MODES:
    raise JalError(f'config.segmentation.biased_pool={mode!r} must be one of '
                   f"{', '.join(BIASED_POOL_MODES)}")
  return mode


def candidates(config: ml_collections.ConfigDict, pool: pool_lib.Pool, round_: int) -> np.ndarray:
  """The unlabeled indices a round's query may choose from, sorted.

  All of them, or with ``config.candidate_subset`` a random subset of that
  size, drawn afresh each round (seeded by the round), the "subset method"
  of the SCAL and TA-VAAL papers.
  """
  unlabeled = pool.unlabeled
  size = config.get('candidate_subset')
  if size is None or size >= unlabeled.size:
    return unlabeled
  subset = rng.numpy_rng(config.seed, 'candidate_subset', round_).choice(unlabeled, size,
                                                                         replace=False)
  return np.sort(subset)


@dataclasses.dataclass
class Experiment:
  """A run's fixed parts, built once by `set_up`: data on the device, the
  strategy with its compiled steps, the oracle and the work directory."""
  config: ml_collections.ConfigDict
  workdir: str
  dataset: data.Dataset
  task: Task
  oracle: oracle_lib.Oracle
  strategy: Strategy
  mesh: jax.sharding.Mesh
  budget: int
  train_images: jax.Array
  test_images: jax.Array
  evaluation_sets: dict[str, jax.Array]
  checkpointer: checkpoint.Checkpointer
  writer: Any  # clu metric writer (TensorBoard)
  lock: dirlock.DirectoryLock  # held until `close`: one process per work directory
  project: project_lib.Project | None = None  # a labeling project's paths (human oracle)

  def labels(self, pool: pool_lib.Pool) -> jax.Array:
    """The oracle's labels of ``pool`` on the device (`jal.task.Task.label_array`)."""
    return jax.device_put(self.task.label_array(pool), sharding.replicated(self.mesh))

  def last_round(self, state: checkpoint.RunState, rounds: int | None) -> int:
    """One past the last round to run now: the end, or ``rounds`` more."""
    end = self.config.num_rounds
    return end if rounds is None else min(end, state.next_round + rounds)

  def close(self) -> None:
    """Closes the checkpoints and TensorBoard files, and releases the work directory."""
    try:
      self.checkpointer.close()
      self.writer.close()
    finally:
      self.lock.release()


@dataclasses.dataclass
class Parts:
  """A run's parts before its work directory is touched, every check passed."""
  dataset: data.Dataset
  evaluation_sets: dict[str, np.ndarray]
  initial_size: int
  budget: int
  mesh: jax.sharding.Mesh
  task: Task
  oracle: oracle_lib.Oracle
  pool_data: data.PoolData
  strategy: Strategy
  project: project_lib.Project | None = None


def build(config: ml_collections.ConfigDict) -> Parts:
  """Loads the data and builds the oracle and the strategy, writing nothing.

  Every check that needs no training runs here: the data's, the config's
  (`jal.checks`) and the strategy's own as it is built.

  Raises:
    JalError: naming the offending key or file.
  """
  project = None
  if config.dataset.name == 'project':
    project = project_lib.read_project(config.dataset.path, config.dataset.classes,
                                       masks=config.get('segmentation') is not None)
  dataset, evaluation_sets = load_data(config, project)
  task = make_task(dataset.class_names, dataset.train_labels, config)
  initial_size, budget = checks.check_config(config, dataset,
                                             whole_images=biased_pool_mode(config, task) == 'images')
  mesh = sharding.make_mesh()
  oracle = oracle_lib.make_oracle(config, dataset.train_labels, dataset.num_classes)
  pool_data = dataset.pool_data()
  strategy = strategies.build(config, pool_data, task, mesh)
  return Parts(dataset, evaluation_sets, initial_size, budget, mesh, task, oracle, pool_data,
               strategy, project)


def _device_copy(array: np.ndarray, placement: jax.sharding.Sharding,
                 shared: dict | None) -> jax.Array:
  """``array`` on the device; with ``shared``, the copy of an equal array already
  there (trials in lockstep hold one copy of their common images, not one each).

  ``shared`` maps ``(shape, dtype, placement)`` to the ``(host, device)``
  pairs put so far, and gets this one.
  """
  if shared is None:
    return jax.device_put(array, placement)
  key = (array.shape, array.dtype.str, placement)
  for host, device in shared.get(key, ()):
    if host is array or np.array_equal(host, array):
      return device
  device = jax.device_put(array, placement)
  shared.setdefault(key, []).append((array, device))
  return device


def set_up(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
           recover: bool = False, labels: str | None = None, shared: dict | None = None
           ) -> tuple[Experiment, checkpoint.RunState]:
  """Checks everything, then opens the work directory and resumes.

  Nothing is written until every check has passed: the work directory's
  (`jal.workdir.inspect`, read-only; a directory in use by another process
  is refused at once), the data's, the config's (`jal.checks`) and the
  strategy's own as it is built. Then, holding the directory's lock, jal
  writes its marker, restores the newest checkpoint (or labels round 0's
  pool) and renders ``results.jsonl``, the plot and TensorBoard from it.

  Args:
    config: the experiment config.
    workdir: the run's directory (`jal.workdir`).
    overwrite: delete a jal run already there (jal's files only).
    recover: when the newest checkpoint is damaged, move it to
      ``<workdir>/damaged/`` and resume from the newest intact one.
    labels: a label file answering the query waiting for a person
      (`jal.human.answers.import_labels`), imported once the run is restored.
    shared: device copies of images to reuse when equal (`_device_copy`):
      one dict passed to every trial of a lockstep run.

  Returns:
    The experiment, holding the directory's lock until `Experiment.close`,
    and its state: the newest checkpoint's, or round 0's (the initial pool,
    labeled).

  Raises:
    JalError: for bad config, data or work directory (before anything is
      written), or a damaged checkpoint without ``recover``.
  """
  lock = dirlock.DirectoryLock(workdir)
  made = not os.path.exists(workdir)
  try:
    if not made and os.path.isdir(workdir):
      lock.acquire()
    first = workdir_lib.inspect(workdir, config, overwrite)
    if labels is not None:
      if config.oracle.name != 'human':
        raise JalError(f'--labels {labels}: this run\'s oracle is '
                       f"config.oracle.name='{config.oracle.name}'; labels are imported into a "
                       "run whose oracle is 'human'")
      if overwrite or not first.checkpoint_steps:
        raise JalError(f'--labels {labels}: no query is waiting for answers in {workdir}; run '
                       'without --labels (and without --overwrite) to get one')
    parts = build(config)

    # Every check passed: from here on jal writes, holding the lock.
    try:
      os.makedirs(workdir, exist_ok=True)
    except OSError as e:
      raise workdir_lib.os_error(e, 'choose another --workdir') from None
    lock.acquire()
    inspection = workdir_lib.inspect(workdir, config, overwrite)
    workdir_lib.start(inspection, config)
    ckpt = checkpoint.Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINTS),
                                   workdir_lib.fingerprint(config))
    state = restore(ckpt, inspection, recover) or initial_state(
        config, parts.pool_data, parts.oracle, parts.initial_size, parts.mesh, parts.task)
    if parts.oracle.asks_a_person:
      state = human_session.open_answers(config, workdir, ckpt, parts.project, parts.oracle,
                                         state, labels)
    if state.next_round:
      logging.info('resuming %s after round %d', workdir, state.next_round - 1)
    writer = results.render(workdir, state.records, plot_title(config, parts.dataset))
  except BaseException:
    lock.release()
    if made and os.path.isdir(workdir) and not os.listdir(workdir):
      os.rmdir(workdir)  # a refused or failed start leaves no trace
    raise
  on_device = functools.partial(_device_copy, placement=sharding.replicated(parts.mesh),
                                shared=shared)
  experiment = Experiment(
      config, workdir, parts.dataset, parts.task, parts.oracle, parts.strategy, parts.mesh,
      parts.budget, train_images=on_device(parts.dataset.train_images),
      test_images=on_device(parts.dataset.test_images),
      evaluation_sets={k: on_device(v) for k, v in parts.evaluation_sets.items()},
      checkpointer=ckpt, writer=writer, lock=lock, project=parts.project)
  return experiment, state


def restore(ckpt: checkpoint.Checkpointer, inspection: workdir_lib.Inspection,
            recover: bool) -> checkpoint.RunState | None:
  """The newest checkpoint's state, or None for a run without one.

  A damaged checkpoint is refused, naming it; with ``recover`` it is moved
  to ``damaged/`` and the next newest is tried, saying which is used. A
  ``results.jsonl`` of more rounds than the checkpoint (a newer checkpoint
  lost) is refused likewise, and set aside with ``recover``.

  Raises:
    JalError: the damage or the mismatch, without ``recover``.
  """
  workdir = inspection.path
  stamp = time.strftime('%Y%m%dT%H%M%S')
  state, moved = None, False
  for step in reversed(ckpt.steps()):
    try:
      state = ckpt.restore(step)
      break
    except checkpoint.DamagedCheckpoint as e:
      if not recover:
        raise JalError(f'{e}; pass --recover to move it to {workdir}/{workdir_lib.DAMAGED}/ and '
                       'resume from the newest intact checkpoint, or --overwrite to start '
                       "over (deletes jal's files)") from None
      target = workdir_lib.set_aside(workdir, os.path.relpath(e.path, workdir), stamp)
      print(f'jal: recover: {e}; moved it to {target}', flush=True)
      moved = True
  if moved:
    ckpt.reopen()
  done = state.next_round if state else 0
  start = f'checkpoint {done}' if state else 'round 0 (no intact checkpoint is left)'
  lost_records = inspection.num_records > done
  if lost_records:
    if not recover:
      raise JalError(f'{workdir}/{workdir_lib.RESULTS} holds {inspection.num_records} rounds but '
                     f'the newest checkpoint only {done} (a newer one was deleted?); restore '
                     f'it, or pass --recover to resume from {start} ({workdir_lib.RESULTS} is '
                     f'kept in {workdir_lib.DAMAGED}/)')
    target = workdir_lib.set_aside(workdir, workdir_lib.RESULTS, stamp)
    print(f'jal: recover: moved {workdir_lib.RESULTS} of {inspection.num_records} rounds to '
          f'{target}', flush=True)
  if moved or lost_records:
    print(f'jal: recover: resuming from {start}', flush=True)
  return state


def plot_title(config: ml_collections.ConfigDict, dataset: data.Dataset) -> str:
  return f'{dataset.name}: {config.strategy.name}, seed {config.seed}'


# -------------------------------------------------------------- one round ----


def fit_task_model(experiment: Experiment, state: checkpoint.RunState, round_: int,
                   labels: jax.Array) -> Fit:
  """Round ``round_``'s task model, trained on the labeled pool by the strategy.

  From scratch (``task_init`` key of the round), unless the config
  warm-starts it from the last round's variables. ``labels``:
  `Experiment.labels` of the pool.
  """
  return experiment.strategy.fit(
      initial_train_state(experiment, state, round_), experiment.train_images, labels,
      state.pool, key=rng.key(experiment.config.seed, 'task_train', round_),
      description=f'round {round_} task model ({state.pool.num_labeled} labeled)')


def initial_train_state(experiment: Experiment, state: checkpoint.RunState,
                        round_: int) -> TrainState:
  """The task model's state before round ``round_``'s fit: fresh (the round's
  ``task_init`` key), or the last round's variables when the config warm-starts."""
  config, trainer = experiment.config, experiment.strategy.trainer
  if config.retrain_from_scratch or state.task_variables is None:
    return trainer.init(rng.key(config.seed, 'task_init', round_))
  return trainer.from_variables(state.task_variables)


def finish_round(experiment: Experiment, state: checkpoint.RunState, round_: int,
                 labels: jax.Array, fitted: Fit, train_seconds: float,
                 train_compile_seconds: float | None = None) -> checkpoint.RunState:
  """Evaluates round ``round_``'s task model, measures the stopping signals
  (`jal.stopping`), queries, has the oracle answer, and records.

  ``train_seconds`` is the fit's wall time, ``train_compile_seconds`` the
  part of it spent compiling (`jal.train.compile_time`; None: not measured).

  Returns:
    The state after the round, already checkpointed; ``results.jsonl``, the
    plot and the TensorBoard scalars are rendered from it.
  """
  config, strategy, task = experiment.config, experiment.strategy, experiment.task
  pool = state.pool
  pool.check()
  task_model = TaskModel(strategy.trainer, fitted.state.variables, config.eval_batch_size)

  # Evaluate.
  def predict(images, indices):
    return strategy.predictive_log_probabilities(task_model, images, indices)
  if experiment.dataset.test_labels.size:
    metrics = task.evaluate(predict, experiment.test_images, experiment.dataset.test_labels,
                            experiment.evaluation_sets, config)
  else:  # a labeling project without test/: no test metrics, and the record says so
    metrics = {task.metric: None, 'test_split': 'none (the labeling project has no test/)'}
  pool_candidates = (candidates(config, pool, round_) if pool.unlabeled.size
                     else np.zeros(0, np.int64))

  # When to stop labeling: one pass over the stop set and the candidates.
  stopping_fields, stop_predictions = {}, None
  if stopping.enabled(config, task.kind):
    start = time.perf_counter()
    stop = stopping.stop_set(config.seed, pool.num_train, stopping.settings(config).stop_set_size)
    stopping_fields, stop_predictions = stopping.signals(
        lambda indices: predict(experiment.train_images, indices), stop, pool_candidates,
        state.stop_predictions)
    stopping_fields['stopping_seconds'] = round(time.perf_counter() - start, 3)

  # Query, and have the oracle label the query.
  query = np.zeros(0, np.int64)
  query_seconds = 0.0
  query_compile_seconds = 0.0
  query_metrics = {}
  pending = None
  if round_ + 1 < config.num_rounds and pool.unlabeled.size:
    start = time.perf_counter()
    ctx = RoundContext(config, strategy.data, round_, pool, experiment.train_images, labels,
                       pool_candidates, task_model, experiment.mesh, fitted=fitted.aux)
    with compile_time.measure() as compiled:
      query = np.asarray(strategy.query(ctx, experiment.budget), np.int64)
    query_seconds = time.perf_counter() - start
    query_compile_seconds = compiled.seconds
    query_metrics = {k: float(v) for k, v in sorted(ctx.metrics.items())}
    pool_lib.check_query(pool, query, experiment.budget)
    if experiment.oracle.asks_a_person:  # asked now, answered with the next run
      log_p = predict(experiment.train_images, query)
      confidence = np.exp(np.max(log_p, -1))
      if task.kind == 'segmentation':  # no class per image: the mean pixel confidence
        predicted = (None,) * query.size
        confidence = confidence.reshape(query.size, -1).mean(axis=1)
      else:
        predicted = tuple(np.argmax(log_p, -1).tolist())
      pending = query_lib.Pending(
          round_ + 1, tuple(query.tolist()),
          tuple([None] * query.size if ctx.scores is None else np.asarray(ctx.scores).tolist()),
          predicted, tuple(confidence.tolist()))
    else:
      pool = pool.add(query, experiment.oracle.label(query, round_ + 1))

  labeled_counts = task.class_counts(experiment.oracle.true_labels(state.pool.labeled))
  record = {
      'round': round_,
      'num_labeled': state.pool.num_labeled,
      **metrics,
      'train_loss': fitted.metrics.get('loss'),
      # Every metric of the task model's last epoch (exact means over its real
      # examples): e.g. Learning Loss's task and ranking losses.
      'train_metrics': {k: float(v) for k, v in sorted(fitted.metrics.items())},
      # What the query measured, e.g. the discriminator's outputs on each
      # pool (VAAL, TA-VAAL, MAL), so a collapsed game is visible.
      'query_metrics': query_metrics,
      # When to stop labeling (`jal.stopping`, classification): Cohen's kappa of
      # the stop set's predictions with the last round's, and the candidates'
      # entropy / log C.
      **stopping_fields,
      # Wall times; *_compile_seconds: the part of each spent compiling.
      'train_seconds': round(train_seconds, 3),
      'query_seconds': round(query_seconds, 3),
      'query_compile_seconds': round(query_compile_seconds, 3),
      'query_size': int(query.size),
      # Unknown when a person has yet to answer.
      'query_class_counts': (None if pending else
                             task.class_counts(experiment.oracle.true_labels(query)).tolist()),
      'labeled_class_counts': labeled_counts.tolist(),
      # 1 - H(counts) / log K (SCAL Eqs. 4-5): 0 balanced, 1 a single class.
      'labeled_sampling_bias': metrics_lib.sampling_bias(labeled_counts),
      'strategy': config.strategy.name,
      'dataset': experiment.dataset.name,
      'seed': config.seed,
  }
  if train_compile_seconds is not None:
    record['train_compile_seconds'] = round(train_compile_seconds, 3)
  if task.metric != 'test_accuracy':  # the headline metric of the plots and tables
    record['metric'] = task.metric
  if config.initial_pool.exclude_classes:  # the biased pool: what the plots follow
    record['excluded_classes'] = [int(c) for c in config.initial_pool.exclude_classes]
  value = record[task.metric]
  print(f"round {round_}: {record['num_labeled']} labeled, {task.metric_name} "
        f"{'n/a' if value is None else f'{value:.4f}'}, train {train_seconds:.1f}s, "
        f'query {query_seconds:.1f}s', flush=True)
  # Kept to warm-start the next round, or for `jal.predict` when a person labels.
  keep = not config.retrain_from_scratch or experiment.oracle.asks_a_person
  task_variables = jax.device_get(task_model.variables) if keep else None
  state = checkpoint.RunState(round_ + 1, pool, state.records + [record], task_variables,
                              pending=pending and pending.to_json(), imports=state.imports,
                              data_digest=state.data_digest, stop_predictions=stop_predictions)
  experiment.checkpointer.save(state)  # first the checkpoint, then what is rendered from it
  results.render_round(experiment.workdir, state.records, experiment.writer,
                       plot_title(config, experiment.dataset))
  return state


# -------------------------------------------------------------------- loop ----


def run(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
        rounds: int | None = None, recover: bool = False, labels: str | None = None,
        command: str | None = None) -> list[dict]:
  """Runs (or resumes) the experiment of ``config`` in ``workdir``.

  Args:
    config: an experiment config (see ``configs/``).
    workdir: the run's directory (`jal.workdir`): its marker, checkpoints,
      ``results.jsonl``, plot and TensorBoard logs.
    overwrite: delete a jal run already in ``workdir`` (jal's files only)
      instead of resuming it.
    rounds: stop after this many more rounds (None: run to the end); the
      next call resumes, so a notebook can run one round per cell.
    recover: resume from the newest intact checkpoint when the newest is
      damaged (see `set_up`).
    labels: a label file with a person's answers to the waiting query
      (``config.oracle.name='human'``, `jal.human`).
    command: the command that continues this run, for the line that asks
      a person for labels (None: described in words).

  Returns:
    One record per finished round (what ``results.jsonl`` holds).

  Raises:
    JalError: for bad config, data or work directory, before anything is
      written, or without losing finished rounds.
  """
  experiment, state = set_up(config, workdir, overwrite, recover, labels)
  try:
    for round_ in range(state.next_round, experiment.last_round(state, rounds)):
      if state.pending is not None:
        break  # a person answers first
      start = time.perf_counter()
      with compile_time.measure() as compiled:
        labels = experiment.labels(state.pool)
        fitted = fit_task_model(experiment, state, round_, labels)
      state = finish_round(experiment, state, round_, labels, fitted,
                           time.perf_counter() - start, compiled.seconds)
    if state.pending is not None:
      human_session.ask(config, workdir, experiment.project, state, command)
  finally:
    experiment.close()
  return state.records

