"""The active-learning experiment loop.

    pool ─► fit the task model ─► evaluate on the test split
         ─► query `budget` unlabeled indices ─► the oracle labels them
         ─► pool' (checkpointed, logged) ─► next round

The loop reads top to bottom; everything heavy is a compiled step
(`jal.training`, the strategies' scoring functions). It owns the pool (NumPy
index arrays) and nothing else that carries across rounds.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Generator, Sequence

import jax
import ml_collections
import numpy as np
from absl import logging

from jal import checkpoint, data, initial_pools, metrics as metrics_lib, oracle, pool as pool_lib
from jal import results, rng
from jal import sharding, strategies
from jal import training, workdir as workdir_lib
from jal.data import imbalance as imbalance_lib, transforms
from jal.errors import JalError
from jal.strategies.base import RoundContext, Strategy, TaskModel


# ---------------------------------------------------------------- set-up ----


def load_dataset(config: ml_collections.ConfigDict) -> data.Dataset:
  """The config's dataset: imbalanced by ``config.dataset.imbalance`` (train
  split; `jal.data.imbalance`), then shrunk to ``max_train`` / ``max_test`` if
  set, without the classes held out by ``config.evaluation.ood_classes``."""
  return load_data(config)[0]


def load_data(config: ml_collections.ConfigDict) -> tuple[data.Dataset, dict[str, np.ndarray]]:
  """The dataset (see `load_dataset`) and the optional evaluation sets.

  Returns:
    ``(dataset, sets)``; ``sets`` holds uint8 ``[m, H, W, C]`` images:
    ``'ood'`` when ``config.evaluation.ood_dataset`` (that dataset's test
    split, converted to the dataset's image shape, a seeded random subset of
    ``ood_max_examples``, None: as many as the test split) or
    ``ood_classes`` (the held-out classes' test images) is set, and
    ``'blurred'`` (the test split with `jal.metrics.gaussian_blur` of
    ``blur_severity`` from the ``blur_benchmark`` table) when
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
      sets['blurred'] = metrics_lib.gaussian_blur(dataset.test_images, evaluation.blur_severity,
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
                   'set it to a multiple of the budget (papers 002 and 004 use 10x) or to None')
  initial_pools.check_settings(config.initial_pool)
  if config.evaluation.ece_bins < 1:
    raise JalError(f'config.evaluation.ece_bins={config.evaluation.ece_bins} must be at least 1 '
                   '(SCAL uses 15)')
  for key in ('epochs', 'batch_size'):
    if config.train[key] < 1:
      raise JalError(f'config.train.{key}={config.train[key]} must be at least 1')
  return initial, budget


def initial_state(config, dataset: data.Dataset, initial_size: int,
                  mesh: jax.sharding.Mesh | None = None) -> checkpoint.RunState:
  """Round 0's pool, labeled by the oracle.

  Chosen by ``config.initial_pool.name`` (`jal.initial_pools`: random, or
  from a self-supervised model trained on the whole pool), seeded by
  ``config.seed`` alone, so every strategy of a trial starts from the same pool.
  ``mesh``: where the self-supervised model trains (None: every device).
  """
  indices = initial_pools.select_initial_pool(config, dataset, mesh or sharding.make_mesh(),
                                              initial_size)
  labels = oracle.noisy_labels(dataset.train_labels[indices], config.oracle.noise_rate,
                               dataset.num_classes, rng.numpy_rng(config.seed, 'oracle', 0))
  empty = pool_lib.Pool(dataset.num_train, np.zeros(0, np.int64), np.zeros(0, np.int32))
  return checkpoint.RunState(next_round=0, pool=empty.add(indices, labels), records=[])


def candidates(config, pool: pool_lib.Pool, round_: int) -> np.ndarray:
  """The unlabeled indices a round's query may choose from, sorted.

  All of them, or with ``config.candidate_subset`` a random subset of that
  size, drawn afresh each round (seeded by the round), as in papers 002 and 004.
  """
  unlabeled = pool.unlabeled
  size = config.get('candidate_subset')
  if size is None or size >= unlabeled.size:
    return unlabeled
  subset = rng.numpy_rng(config.seed, 'candidate_subset', round_).choice(unlabeled, size,
                                                                         replace=False)
  return np.sort(subset)


def evaluate(strategy: Strategy, task: TaskModel, test_images: jax.Array,
             test_labels: np.ndarray, num_classes: int, ece_bins: int = 15,
             ood_images: jax.Array | None = None,
             blurred_images: jax.Array | None = None) -> dict:
  """The test-split metrics of the task model's predictive distribution.

  The distribution is the strategy's (`Strategy.predictive_log_probabilities`:
  the softmax, or an MC-dropout or ensemble average). Returns
  ``test_accuracy``, ``test_per_class_accuracy`` (a list of ``num_classes``,
  None for a class absent from the split), ``test_ece`` (SCAL Eq. 6 with
  ``ece_bins`` bins), ``test_brier`` and ``test_nll`` (nats); see `jal.metrics`.
  With ``ood_images`` (uint8 device array), also ``test_ood_auroc``: the
  AUROC of the maximum softmax probability, test split against those images
  (paper 002, Fig. 4a, with MSP as the score). With ``blurred_images`` (the
  test split blurred, same order), also ``blurred_accuracy`` and
  ``blurred_ece`` (paper 002, Fig. 4b-c).
  """
  log_p = strategy.predictive_log_probabilities(task, test_images, np.arange(test_labels.size))
  m = metrics_lib.evaluation_metrics(log_p, test_labels, num_classes, num_bins=ece_bins)
  out = {'test_accuracy': m['accuracy'], 'test_per_class_accuracy': m['per_class_accuracy'],
         'test_ece': m['ece'], 'test_brier': m['brier'], 'test_nll': m['nll']}
  if ood_images is not None:
    ood_log_p = strategy.predictive_log_probabilities(task, ood_images,
                                                      np.arange(ood_images.shape[0]))
    out['test_ood_auroc'] = metrics_lib.ood_auroc(metrics_lib.max_softmax_probability(log_p),
                                                  metrics_lib.max_softmax_probability(ood_log_p))
  if blurred_images is not None:
    blurred_log_p = strategy.predictive_log_probabilities(task, blurred_images,
                                                          np.arange(test_labels.size))
    out['blurred_accuracy'] = metrics_lib.accuracy(blurred_log_p, test_labels)
    out['blurred_ece'] = metrics_lib.expected_calibration_error(blurred_log_p, test_labels,
                                                                num_bins=ece_bins)
  return out


# ------------------------------------------------------------------ loop ----


@dataclasses.dataclass
class FitRequest:
  """The fit of one round's task model: `run_steps` yields it, its driver executes it.

  `run` executes it at once; `run_trials` fits the requests of several
  trials together where it can (`jal.training.fit_trials`).
  """
  strategy: Strategy
  trainer: training.Trainer
  state: training.TrainState
  images: jax.Array
  labels: jax.Array
  pool: pool_lib.Pool
  epochs: int
  key: jax.Array
  description: str
  # Trials whose fits share this can train together: the same config but the
  # seed (and the same train images: no per-seed imbalance).
  batch_id: str

  def execute(self) -> tuple[training.TrainState, dict]:
    return self.strategy.fit_task_model(self.trainer, self.state, self.images, self.labels,
                                        self.pool, epochs=self.epochs, key=self.key,
                                        description=self.description)

  @property
  def batchable(self) -> bool:
    """Whether the fit is plain `jal.training.fit` (no strategy-specific training)."""
    return type(self.strategy).fit_task_model is Strategy.fit_task_model


def run(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
        rounds: int | None = None) -> list[dict]:
  """Runs (or resumes) the experiment of ``config`` in ``workdir``.

  Args:
    config: an experiment config (see ``configs/``).
    workdir: where the config, checkpoints, ``results.jsonl`` and
      ``accuracy.png`` go.
    overwrite: delete a run already in ``workdir`` instead of resuming it.
    rounds: stop after this many more rounds (None: run to the end); the
      next call resumes, so a notebook can run one round per cell.

  Returns:
    One record per finished round (what ``results.jsonl`` holds).

  Raises:
    JalError: for bad config, data or work directory, before anything is
      written (a bad work directory) or without losing finished rounds.
  """
  steps = run_steps(config, workdir, overwrite, rounds)
  try:
    request = next(steps)
    while True:
      request = steps.send(request.execute())
  except StopIteration as done:
    return done.value


def run_trials(configs: Sequence[ml_collections.ConfigDict], workdirs: Sequence[str],
               overwrite: bool = False) -> list[list[dict]]:
  """Runs (or resumes) several trials in lockstep, fitting their task models together.

  Each trial is `run` of its config in its work directory, with the same
  results and files. At each round, the trials whose task models train with
  plain `jal.training.fit`, on pools of one size, with configs that differ in
  the seed alone (and no per-seed imbalance, so the same train images), are
  fitted in one vmapped program (`jal.training.fit_trials`); the others one
  after another.

  Returns:
    Each trial's records.

  Raises:
    JalError: as `run`.
  """
  steps = [run_steps(c, w, overwrite) for c, w in zip(configs, workdirs)]
  requests: dict[int, FitRequest] = {}
  outcomes: dict[int, list[dict]] = {}

  def advance(i, fitted):
    try:
      requests[i] = steps[i].send(fitted)
    except StopIteration as done:
      requests.pop(i, None)
      outcomes[i] = done.value

  for i in range(len(steps)):
    advance(i, None)
  while requests:
    group = list(requests.items())
    first = group[0][1]
    together = (len(group) > 1 and all(r.batchable for _, r in group)
                and len({(r.pool.num_labeled, r.batch_id) for _, r in group}) == 1)
    if together:
      states, metrics = training.fit_trials(
          first.trainer, [r.state for _, r in group], first.images, [r.labels for _, r in group],
          [r.pool.labeled for _, r in group], epochs=first.epochs,
          keys=[r.key for _, r in group],
          description=f'{first.description}, {len(group)} trials together')
      fitted = list(zip(states, metrics))
    else:
      fitted = [r.execute() for _, r in group]
    for (i, _), result in zip(group, fitted):
      advance(i, result)
  return [outcomes[i] for i in range(len(steps))]


def run_steps(config: ml_collections.ConfigDict, workdir: str, overwrite: bool = False,
              rounds: int | None = None) -> Generator[FitRequest, Any, list[dict]]:
  """`run` as a generator: it yields each round's `FitRequest` and is sent
  back ``(trained state, metrics)``; it returns the records."""
  # Everything that can reject the config comes before the work directory is touched.
  strategy_cls = strategies.get(config.strategy.name)
  dataset, evaluation_sets = load_data(config)
  initial_size, budget = check_config(config, dataset)
  mesh = sharding.make_mesh()
  strategy = strategy_cls(config, dataset, mesh)
  task_model = strategy.task_model(dataset.num_classes)
  task_trainer = training.Trainer(task_model, config.train, strategy.task_loss, dataset.mean,
                                  dataset.std, dataset.flip, mesh, dataset.image_shape,
                                  freeze_after=strategy.task_freeze_after,
                                  views=strategy.task_views)
  workdir_lib.prepare(workdir, config, overwrite)
  results_path = os.path.join(workdir, 'results.jsonl')
  plot_path = os.path.join(workdir, 'accuracy.png')

  on_device = sharding.replicated(mesh)
  # `run_trials` fits trials together only if their configs differ in the seed
  # alone, and the seed does not change the train images (imbalance).
  batch_id = repr({k: v for k, v in workdir_lib.config_to_dict(config).items()
                   if k != 'seed' or config.dataset.imbalance.kind})
  train_images = jax.device_put(dataset.train_images, on_device)
  test_images = jax.device_put(dataset.test_images, on_device)
  evaluation_sets = {k: jax.device_put(v, on_device) for k, v in evaluation_sets.items()}

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
  state = ckpt.latest() or initial_state(config, dataset, initial_size, mesh)
  if state.next_round:
    logging.info('resuming %s after round %d', workdir, state.next_round - 1)
  results.write_jsonl(state.records, results_path)

  last_round = config.num_rounds if rounds is None else min(config.num_rounds,
                                                              state.next_round + rounds)
  for round_ in range(state.next_round, last_round):
    pool = state.pool
    pool.check()
    labels = jax.device_put(pool.label_array(), on_device)

    # Fit the task model: from scratch each round, unless the config says otherwise.
    start = time.perf_counter()
    if config.retrain_from_scratch or state.task_variables is None:
      train_state = task_trainer.init(rng.key(config.seed, 'task_init', round_))
    else:
      train_state = task_trainer.from_variables(state.task_variables)
    train_state, train_metrics = yield FitRequest(
        strategy, task_trainer, train_state, train_images, labels, pool, config.train.epochs,
        rng.key(config.seed, 'task_train', round_),
        f'round {round_} task model ({pool.num_labeled} labeled)', batch_id)
    task = TaskModel(task_trainer, train_state.variables, config.eval_batch_size)
    train_seconds = time.perf_counter() - start

    # Evaluate.
    metrics = evaluate(strategy, task, test_images, dataset.test_labels, dataset.num_classes,
                       config.evaluation.ece_bins, evaluation_sets.get('ood'),
                       evaluation_sets.get('blurred'))

    # Query, and have the oracle label the query.
    query = np.zeros(0, np.int64)
    query_seconds = 0.0
    query_metrics = {}
    if round_ + 1 < config.num_rounds and pool.num_labeled < pool.num_train:
      start = time.perf_counter()
      ctx = RoundContext(config, dataset, round_, pool, train_images, labels,
                         candidates(config, pool, round_), task, mesh)
      query = np.asarray(strategy.query(ctx, budget), np.int64)
      query_seconds = time.perf_counter() - start
      query_metrics = {k: float(v) for k, v in sorted(ctx.metrics.items())}
      pool_lib.check_query(pool, query, budget)
      answers = oracle.noisy_labels(dataset.train_labels[query], config.oracle.noise_rate,
                                    dataset.num_classes,
                                    rng.numpy_rng(config.seed, 'oracle', round_ + 1))
      pool = pool.add(query, answers)

    labeled_counts = np.bincount(dataset.train_labels[state.pool.labeled],
                                 minlength=dataset.num_classes)
    record = {
        'round': round_,
        'num_labeled': state.pool.num_labeled,
        **metrics,
        'train_loss': train_metrics.get('loss'),
        # Every metric of the task model's last epoch (means over its steps):
        # e.g. Learning Loss's task and ranking losses.
        'train_metrics': {k: float(v) for k, v in sorted(train_metrics.items())},
        # What the query measured, e.g. the discriminator's outputs on each
        # pool (VAAL, TA-VAAL, MAL), so a collapsed game is visible.
        'query_metrics': query_metrics,
        'train_seconds': round(train_seconds, 3),
        'query_seconds': round(query_seconds, 3),
        'query_size': int(query.size),
        'query_class_counts': np.bincount(dataset.train_labels[query],
                                          minlength=dataset.num_classes).tolist(),
        'labeled_class_counts': labeled_counts.tolist(),
        # 1 - H(counts) / log K (SCAL Eqs. 4-5): 0 balanced, 1 a single class.
        'labeled_sampling_bias': metrics_lib.sampling_bias(labeled_counts),
        'strategy': config.strategy.name,
        'dataset': dataset.name,
        'seed': config.seed,
    }
    logging.info('round %d: %d labeled, test accuracy %.4f, train %.1fs, query %.1fs', round_,
                 record['num_labeled'], record['test_accuracy'], train_seconds, query_seconds)
    task_variables = None if config.retrain_from_scratch else jax.device_get(task.variables)
    state = checkpoint.RunState(round_ + 1, pool, state.records + [record], task_variables)
    ckpt.save(state)  # first the checkpoint, then what is rendered from it
    results.write_jsonl(state.records, results_path)
    results.plot_accuracy(state.records, plot_path,
                          f'{dataset.name}: {config.strategy.name}, seed {config.seed}')
  ckpt.close()
  return state.records
