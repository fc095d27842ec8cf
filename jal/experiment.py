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
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging

from jal import checkpoint, data, initial_pools, metrics as metrics_lib, oracle as oracle_lib
from jal import pool as pool_lib, results, rng, sharding, strategies, workdir as workdir_lib
from jal.data import corruptions, imbalance as imbalance_lib, transforms
from jal.errors import JalError
from jal.strategies.base import Fit, RoundContext, Strategy, TaskModel
from jal.task import Task, make_task
from jal.train import TrainState

# ------------------------------------------------------------------ set-up ----


def load_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, dict[str, np.ndarray]]:
  """The config's dataset and the optional evaluation sets.

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
  dataset = data.load(cfg.name, image_size=cfg.get('image_size'), path=cfg.get('path'),
                      split_seed=cfg.get('split_seed', 0))
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


def check_config(config: ml_collections.ConfigDict, dataset: data.Dataset) -> tuple[int, int]:
  """Validates the sizes of the protocol; returns ``(initial_size, budget)``.

  Raises:
    JalError: naming the offending key and how to fix it.
  """
  n = dataset.num_train
  initial = pool_lib.resolve_count(config.initial_pool.size, n, 'config.initial_pool.size')
  budget = pool_lib.resolve_count(config.budget, n, 'config.budget')
  if config.num_rounds < 1:
    raise JalError(f'config.num_rounds={config.num_rounds} must be at least 1')
  if config.num_rounds > 1 and budget > n - initial:
    raise JalError(f'config.budget={budget} is larger than the {n - initial} unlabeled examples '
                   'left after the initial pool; lower config.budget or config.initial_pool.size')
  bad = [c for c in config.initial_pool.exclude_classes if not 0 <= c < dataset.num_classes]
  if bad:
    raise JalError(f'config.initial_pool.exclude_classes has {bad}, not classes of '
                   f'{dataset.name} (0..{dataset.num_classes - 1})')
  subset = config.get('candidate_subset')
  if subset is not None and not budget <= subset:
    raise JalError(f'config.candidate_subset={subset} is smaller than the budget of {budget}; '
                   'set it to a multiple of the budget (the SCAL and TA-VAAL papers use 10x) '
                   'or to None')
  initial_pools.check_settings(config.initial_pool)
  if config.evaluation.ece_bins < 1:
    raise JalError(f'config.evaluation.ece_bins={config.evaluation.ece_bins} must be at least 1 '
                   '(SCAL uses 15)')
  for key in ('epochs', 'batch_size'):
    if config.train[key] < 1:
      raise JalError(f'config.train.{key}={config.train[key]} must be at least 1')
  return initial, budget


def initial_state(config: ml_collections.ConfigDict, pool_data: data.PoolData,
                  oracle: oracle_lib.Oracle, initial_size: int,
                  mesh: jax.sharding.Mesh | None = None) -> checkpoint.RunState:
  """Round 0's pool, labeled by the oracle.

  Chosen by ``config.initial_pool.name`` (`jal.initial_pools`: random, or
  from a self-supervised model trained on the whole pool), seeded by
  ``config.seed`` alone, so every strategy of a trial starts from the same
  pool. Only examples outside ``config.initial_pool.exclude_classes`` (by the
  oracle's ground truth: PAL's biased-pool scenario) are eligible.
  ``mesh``: where the self-supervised model trains (None: every device).
  """
  everything = np.arange(pool_data.num_train)
  exclude = np.asarray(tuple(config.initial_pool.exclude_classes), np.int64)
  eligible = everything[~np.isin(oracle.true_labels(everything), exclude)]
  indices = initial_pools.select_initial_pool(config, pool_data, mesh or sharding.make_mesh(),
                                              initial_size, eligible)
  empty = pool_lib.Pool(pool_data.num_train, np.zeros(0, np.int64), np.zeros(0, np.int32))
  return checkpoint.RunState(next_round=0, pool=empty.add(indices, oracle.label(indices, 0)),
                             records=[])


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

  def labels(self, pool: pool_lib.Pool) -> jax.Array:
    """The oracle's labels of ``pool`` on the device (`jal.task.Task.label_array`)."""
    return jax.device_put(self.task.label_array(pool), sharding.replicated(self.mesh))

  def last_round(self, state: checkpoint.RunState, rounds: int | None) -> int:
    """One past the last round to run now: the end, or ``rounds`` more."""
    end = self.config.num_rounds
    return end if rounds is None else min(end, state.next_round + rounds)

  def close(self) -> None:
    self.checkpointer.close()
    self.writer.close()


def set_up(config: ml_collections.ConfigDict, workdir: str,
           overwrite: bool = False) -> tuple[Experiment, checkpoint.RunState]:
  """Loads and checks everything, then opens the work directory and resumes.

  Returns:
    The experiment and its state: the last checkpoint's, or round 0's
    (the initial pool, labeled).

  Raises:
    JalError: for bad config, data or work directory, before anything is
      written.
  """
  # Everything that can reject the config comes before the work directory is touched.
  dataset, evaluation_sets = load_data(config)
  initial_size, budget = check_config(config, dataset)
  mesh = sharding.make_mesh()
  task = make_task(dataset.class_names)
  oracle = oracle_lib.make_oracle(config, dataset.train_labels, dataset.num_classes)
  pool_data = dataset.pool_data()
  strategy = strategies.build(config, pool_data, task, mesh)
  workdir_lib.prepare(workdir, config, overwrite)

  on_device = sharding.replicated(mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINTS))
  state = ckpt.latest() or initial_state(config, pool_data, oracle, initial_size, mesh)
  if state.next_round:
    logging.info('resuming %s after round %d', workdir, state.next_round - 1)
  results.write_jsonl(state.records, os.path.join(workdir, workdir_lib.RESULTS))
  experiment = Experiment(
      config, workdir, dataset, task, oracle, strategy, mesh, budget,
      train_images=jax.device_put(dataset.train_images, on_device),
      test_images=jax.device_put(dataset.test_images, on_device),
      evaluation_sets={k: jax.device_put(v, on_device) for k, v in evaluation_sets.items()},
      checkpointer=ckpt, writer=results.metric_writer(workdir))
  return experiment, state


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
                 labels: jax.Array, fitted: Fit, train_seconds: float) -> checkpoint.RunState:
  """Evaluates round ``round_``'s task model, queries, has the oracle answer, and records.

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
  metrics = task.evaluate(predict, experiment.test_images, experiment.dataset.test_labels,
                          experiment.evaluation_sets, config)

  # Query, and have the oracle label the query.
  query = np.zeros(0, np.int64)
  query_seconds = 0.0
  query_metrics = {}
  if round_ + 1 < config.num_rounds and pool.num_labeled < pool.num_train:
    start = time.perf_counter()
    ctx = RoundContext(config, strategy.data, round_, pool, experiment.train_images, labels,
                       candidates(config, pool, round_), task_model, experiment.mesh,
                       fitted=fitted.aux)
    query = np.asarray(strategy.query(ctx, experiment.budget), np.int64)
    query_seconds = time.perf_counter() - start
    query_metrics = {k: float(v) for k, v in sorted(ctx.metrics.items())}
    pool_lib.check_query(pool, query, experiment.budget)
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
      'train_seconds': round(train_seconds, 3),
      'query_seconds': round(query_seconds, 3),
      'query_size': int(query.size),
      'query_class_counts': task.class_counts(experiment.oracle.true_labels(query)).tolist(),
      'labeled_class_counts': labeled_counts.tolist(),
      # 1 - H(counts) / log K (SCAL Eqs. 4-5): 0 balanced, 1 a single class.
      'labeled_sampling_bias': metrics_lib.sampling_bias(labeled_counts),
      'strategy': config.strategy.name,
      'dataset': experiment.dataset.name,
      'seed': config.seed,
  }
  print(f"round {round_}: {record['num_labeled']} labeled, test accuracy "
        f"{record['test_accuracy']:.4f}, train {train_seconds:.1f}s, query {query_seconds:.1f}s",
        flush=True)
  task_variables = None if config.retrain_from_scratch else jax.device_get(task_model.variables)
  state = checkpoint.RunState(round_ + 1, pool, state.records + [record], task_variables)
  experiment.checkpointer.save(state)  # first the checkpoint, then what is rendered from it
  workdir = experiment.workdir
  results.write_jsonl(state.records, os.path.join(workdir, workdir_lib.RESULTS))
  results.plot_accuracy(state.records, os.path.join(workdir, workdir_lib.PLOT),
                        f'{experiment.dataset.name}: {config.strategy.name}, seed {config.seed}')
  results.write_scalars(experiment.writer, record)
  return state


# -------------------------------------------------------------------- loop ----


def run(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
        rounds: int | None = None) -> list[dict]:
  """Runs (or resumes) the experiment of ``config`` in ``workdir``.

  Args:
    config: an experiment config (see ``configs/``).
    workdir: where the config, checkpoints, ``results.jsonl``, the plot and
      the TensorBoard logs go.
    overwrite: delete a run already in ``workdir`` instead of resuming it.
    rounds: stop after this many more rounds (None: run to the end); the
      next call resumes, so a notebook can run one round per cell.

  Returns:
    One record per finished round (what ``results.jsonl`` holds).

  Raises:
    JalError: for bad config, data or work directory, before anything is
      written (a bad work directory) or without losing finished rounds.
  """
  experiment, state = set_up(config, workdir, overwrite)
  for round_ in range(state.next_round, experiment.last_round(state, rounds)):
    start = time.perf_counter()
    labels = experiment.labels(state.pool)
    fitted = fit_task_model(experiment, state, round_, labels)
    state = finish_round(experiment, state, round_, labels, fitted, time.perf_counter() - start)
  experiment.close()
  return state.records
