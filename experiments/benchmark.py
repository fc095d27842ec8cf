r"""Throughput of jal against a PyTorch reference of the same networks and steps.

One run measures, for jal and for PyTorch (eager and ``torch.compile``d), on
the same network, batch sizes and random uint8 data resident on the device:

  train      training images/s: the whole step (gather by index, pad-and-crop
             and flip, normalise, forward, cross-entropy, backward, SGD with
             momentum and weight decay), through each library's own `fit`;
  inference  eval-mode images/s of the classifier over a pool;
  pal_score  seconds for PAL's scoring pass over a pool (four rotations per
             image, S_S and S_C);
  pal_round  seconds for one PAL active-learning round at the given pool
             sizes: fit the task model, train the scoring network, score the
             unlabeled pool, K sub-queries each fine-tuning g' and rescoring.

Each workload runs once to compile (reported apart, as first-call seconds
minus the steady median) and then ``--repeats`` times; the median is the
figure. The ratios jal / PyTorch come last. On a GPU everything runs on the GPU.

  pip install -e ".[bench]"
  python experiments/benchmark.py --preset=cpu           # here: 2 CPU cores
  python experiments/benchmark.py --preset=gpu --dtype=bfloat16

``--reference=none`` measures jal alone (no PyTorch needed). ``--json=FILE``
also writes every figure as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

from absl import app, flags
import jax
import ml_collections
import numpy as np

from jal import config_util, inference, progress, sharding, training
from jal.data.dataset import Dataset
from jal.models import ClassifierHead, MultiHeadNet, compute_dtype, get_backbone
from jal.pool import Pool
from jal.strategies import base, pal

# Sizes per preset; every one can be overridden by its flag.
PRESETS = {
    # Small enough for 2 CPU cores: a few minutes for both libraries.
    'cpu': dict(network='small_cnn', width=32, batch_size=128, train_steps=8,
                eval_batch_size=500, pool_size=2000, round_labeled=500,
                round_unlabeled=1000, round_budget=100, round_epochs=1, repeats=3),
    'cpu_resnet18': dict(network='resnet18', width=64, batch_size=32, train_steps=4,
                         eval_batch_size=100, pool_size=200, round_labeled=0,
                         round_unlabeled=0, round_budget=0, round_epochs=0, repeats=3),
    # The GPU goals: ResNet-18 CIFAR, SVHN-sized pool, SVHN-scale round.
    'gpu': dict(network='resnet18', width=64, batch_size=512, train_steps=100,
                eval_batch_size=4096, pool_size=73_257, round_labeled=22_000,
                round_unlabeled=51_257, round_budget=3_663, round_epochs=100, repeats=5),
}

_PRESET = flags.DEFINE_enum('preset', 'cpu', list(PRESETS), 'Sizes to start from.')
_NETWORK = flags.DEFINE_enum('network', None, ['resnet18', 'small_cnn'], 'Task network.')
_WIDTH = flags.DEFINE_integer('width', None, 'Channels of the first stage.')
_BATCH = flags.DEFINE_integer('batch_size', None, 'Training batch size.')
_STEPS = flags.DEFINE_integer('train_steps', None, 'Training steps per measurement.')
_EVAL_BATCH = flags.DEFINE_integer('eval_batch_size', None, 'Inference and scoring batch.')
_POOL = flags.DEFINE_integer('pool_size', None, 'Images in the inference / scoring pool.')
_LABELED = flags.DEFINE_integer('round_labeled', None, 'Labeled pool of the PAL round (0: skip).')
_UNLABELED = flags.DEFINE_integer('round_unlabeled', None, 'Unlabeled pool of the PAL round.')
_BUDGET = flags.DEFINE_integer('round_budget', None, 'Query size of the PAL round.')
_EPOCHS = flags.DEFINE_integer('round_epochs', None, 'Epochs of the task model and scorer.')
_REPEATS = flags.DEFINE_integer('repeats', None, 'Timed repeats after the compiling one.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'Compute dtype (parameters stay float32; PyTorch uses autocast).')
_REFERENCE = flags.DEFINE_list('reference', ['eager', 'compile'],
                               'PyTorch modes to measure: eager, compile, or none.')
_ONLY = flags.DEFINE_list('only', ['train', 'inference', 'pal_score', 'pal_round'],
                          'Workloads to run.')
_JSON = flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
MEAN = np.array([0.49, 0.48, 0.45], np.float32)
STD = np.array([0.25, 0.24, 0.26], np.float32)
CROP_PAD = 4
FINETUNE_EPOCHS = 5  # PAL's g' (jal's default for the paper's unstated value)
NUM_SUBQUERIES = 5


@dataclasses.dataclass
class Figure:
  """One measurement: steady median seconds and first-call (compile) seconds."""
  seconds: float
  compile_seconds: float
  items: int  # images processed per call (0 for whole-round timings)

  @property
  def per_second(self) -> float:
    return self.items / self.seconds


def measure(run: Callable[[], Any], repeats: int) -> tuple[float, float]:
  """``(median seconds, first-call seconds - median)`` of ``run`` (which must block)."""
  start = time.perf_counter()
  run()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    run()
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return median, max(0.0, first - median)


# -------------------------------------------------------------------- jal ---


def _train_config(batch_size: int, epochs: int, learning_rate: float = 0.01):
  return config_util.train_config(optimizer='sgd', learning_rate=learning_rate, momentum=0.9,
                                  weight_decay=5e-4, epochs=epochs, batch_size=batch_size,
                                  crop_pad=CROP_PAD, flip=True)


def _jal_model(s, rotation: bool):
  heads = {'classifier': ClassifierHead(NUM_CLASSES)}
  if rotation:
    heads['rotation'] = pal.RotationHead()
  return MultiHeadNet(get_backbone(s.network, width=s.width, dtype=compute_dtype(s.dtype)),
                      heads)


def _logits(outputs):
  return outputs['classifier']


class JalBench:
  """jal's side: the library's own Trainer, fit, predict and PAL strategy."""

  name = 'jal'

  def __init__(self, s, images: np.ndarray, labels: np.ndarray):
    self.s = s
    self.mesh = sharding.make_mesh()
    on_device = sharding.replicated(self.mesh)
    self.images = jax.device_put(images, on_device)
    self.labels = jax.device_put(labels, on_device)
    self.host_images, self.host_labels = images, labels

  def _trainer(self, model, batch_size, epochs, loss=training.cross_entropy_loss):
    return training.Trainer(model, _train_config(batch_size, epochs), loss, MEAN, STD, True,
                            self.mesh, IMAGE_SHAPE)

  def train(self) -> Figure:
    s = self.s
    trainer = self._trainer(_jal_model(s, rotation=False), s.batch_size, 1)
    indices = np.arange(s.batch_size * s.train_steps)
    state = [trainer.init(jax.random.key(0))]

    def run():
      state[0], _ = training.fit(trainer, state[0], self.images, self.labels, indices, epochs=1,
                                 key=jax.random.key(1))
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def inference(self) -> Figure:
    s = self.s
    trainer = self._trainer(_jal_model(s, rotation=False), s.batch_size, 1)
    variables = trainer.init(jax.random.key(0)).variables
    indices = np.arange(s.pool_size)
    seconds, compile_seconds = measure(
        lambda: trainer.predict(variables, self.images, indices, _logits, s.eval_batch_size),
        s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def pal_score(self) -> Figure:
    s = self.s
    model = _jal_model(s, rotation=True)
    trainer = self._trainer(model, s.batch_size, 1)
    variables = trainer.init(jax.random.key(0)).variables
    score = jax.jit(lambda v, x, i: pal.score_batch(model, MEAN, STD, v, x, i))
    indices = np.arange(s.pool_size)
    seconds, compile_seconds = measure(
        lambda: inference.map_batches(score, (variables, self.images), indices,
                                      s.eval_batch_size, trainer.batch_sharding), s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def pal_round(self) -> Figure:
    """A round as `jal.experiment.run` does it, without the file writing."""
    s = self.s
    config = config_util.base_config()
    config.model.name, config.model.width, config.model.dtype = s.network, s.width, s.dtype
    config.train = _train_config(s.batch_size, s.round_epochs)
    config.eval_batch_size = s.eval_batch_size
    config.strategy = config_util.pal_strategy(
        num_subqueries=NUM_SUBQUERIES,
        scoring_model=dict(name=s.network, width=s.width, dtype=s.dtype),
        scoring_train=_train_config(s.batch_size, s.round_epochs),
        finetune=_train_config(s.batch_size, FINETUNE_EPOCHS))
    n = s.round_labeled + s.round_unlabeled
    dataset = Dataset('synthetic', self.host_images[:n], self.host_labels[:n],
                      self.host_images[:1], self.host_labels[:1],
                      tuple(str(c) for c in range(NUM_CLASSES)), True, MEAN, STD)
    strategy = pal.Strategy(config, dataset, self.mesh)
    task_model = _jal_model(s, rotation=False)
    task_trainer = self._trainer(task_model, s.batch_size, s.round_epochs)
    labeled = np.arange(s.round_labeled)
    pool = Pool(n, np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
        labeled, self.host_labels[labeled])
    labels = jax.device_put(pool.label_array(), sharding.replicated(self.mesh))
    images = self.images[:n]

    def run():
      state = task_trainer.init(jax.random.key(0))
      state, _ = training.fit(task_trainer, state, images, labels, labeled,
                              epochs=s.round_epochs, key=jax.random.key(1))
      task = base.TaskModel(task_trainer, state.variables, s.eval_batch_size)
      ctx = base.RoundContext(config, dataset, 0, pool, images, labels, pool.unlabeled, task,
                              self.mesh)
      return strategy.query(ctx, s.round_budget)
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, 0)


# ---------------------------------------------------------------- PyTorch ---


class TorchBench:
  """The PyTorch reference (`torch_reference.py`) in one mode: eager or compiled."""

  def __init__(self, s, images: np.ndarray, labels: np.ndarray, mode: str):
    import torch  # pylint: disable=g-import-not-at-top
    import torch_reference  # pylint: disable=g-import-not-at-top
    self.torch, self.ref, self.s, self.mode = torch, torch_reference, s, mode
    self.name = f'torch {mode}'
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    self.images = torch.from_numpy(images).to(self.device)
    self.labels = torch.from_numpy(labels.astype(np.int64)).to(self.device)
    self.host_labels = labels
    self.mean = torch.from_numpy(MEAN).to(self.device)
    self.std = torch.from_numpy(STD).to(self.device)
    self.compile = mode == 'compile'

  def _autocast(self):
    return self.torch.autocast(self.device.type, dtype=self.torch.bfloat16,
                               enabled=self.s.dtype == 'bfloat16')

  def _sync(self):
    if self.device.type == 'cuda':
      self.torch.cuda.synchronize()

  def _network(self):
    torch = self.torch
    torch.manual_seed(0)
    model = self.ref.build_network(self.s.network, self.s.width, NUM_CLASSES).to(self.device)
    # channels_last is PyTorch's fast layout for cuDNN convolutions (with bf16 above all).
    return model.to(memory_format=torch.channels_last) if self.device.type == 'cuda' else model

  def train(self) -> Figure:
    s = self.s
    trainer = self.ref.Trainer(self._network(), 'ce', 0.01, CROP_PAD, True, self.mean, self.std,
                               compile=self.compile)
    indices = np.arange(s.batch_size * s.train_steps)

    def run():
      with self._autocast():
        trainer.fit(self.images, self.labels, indices, 1, s.batch_size, seed=1)
      self._sync()
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def _eval_network(self):
    model = self._network().eval()
    return self.ref.compiled(model) if self.compile else model

  def inference(self) -> Figure:
    s = self.s
    model = self._eval_network()
    indices = np.arange(s.pool_size)

    def run():
      with self._autocast():
        self.ref.predict(model, self.images, indices, s.eval_batch_size, self.mean, self.std)
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def pal_score(self) -> Figure:
    s = self.s
    model = self._eval_network()
    indices = np.arange(s.pool_size)

    def run():
      with self._autocast():
        self.ref.pal_scores(model, self.images, indices, s.eval_batch_size, self.mean, self.std)
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, indices.size)

  def pal_round(self) -> Figure:
    s = self.s
    n = s.round_labeled + s.round_unlabeled

    def run():
      with self._autocast():
        self.ref.pal_round(
            self.images[:n], self.labels[:n], np.arange(s.round_labeled),
            np.arange(s.round_labeled, n), s.round_budget, task_network=s.network,
            scoring_network=s.network, width_task=s.width, width_scoring=s.width,
            num_classes=NUM_CLASSES, epochs_task=s.round_epochs,
            epochs_scoring=s.round_epochs, epochs_finetune=FINETUNE_EPOCHS,
            num_subqueries=NUM_SUBQUERIES, batch_size=s.batch_size,
            eval_batch_size=s.eval_batch_size, learning_rate=0.01,
            finetune_learning_rate=0.01, crop_pad=CROP_PAD, flip=True, mean=self.mean,
            std=self.std, compile=self.compile, seed=0)
      self._sync()
    seconds, compile_seconds = measure(run, s.repeats)
    return Figure(seconds, compile_seconds, 0)


# ------------------------------------------------------------------ report ---


def _settings() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict(PRESETS[_PRESET.value])
  for name, flag in [('network', _NETWORK), ('width', _WIDTH), ('batch_size', _BATCH),
                     ('train_steps', _STEPS), ('eval_batch_size', _EVAL_BATCH),
                     ('pool_size', _POOL), ('round_labeled', _LABELED),
                     ('round_unlabeled', _UNLABELED), ('round_budget', _BUDGET),
                     ('round_epochs', _EPOCHS), ('repeats', _REPEATS)]:
    if flag.value is not None:
      s[name] = flag.value
  s.dtype = _DTYPE.value
  return s


def _hardware() -> str:
  device = jax.devices()[0]
  cpu = f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})'
  if device.platform == 'cpu':
    return cpu
  return f'{jax.device_count()} x {device.device_kind}, {cpu}'


def _describe(workload: str, fig: Figure) -> str:
  if workload in ('train', 'inference'):
    return f'{fig.per_second:12,.0f} images/s'
  if workload == 'pal_score':
    return f'{fig.seconds:10.3f} s ({fig.per_second:,.0f} images/s, x4 rotations)'
  return f'{fig.seconds:10.2f} s'


def main(argv):
  del argv
  progress.set_enabled(False)
  s = _settings()
  workloads = [w for w in _ONLY.value
               if w != 'pal_round' or (s.round_labeled > 0 and s.round_budget > 0)]
  modes = [m for m in _REFERENCE.value if m != 'none']
  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  n = max(s.batch_size * s.train_steps, s.pool_size, s.round_labeled + s.round_unlabeled)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
  labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)

  benches = [JalBench(s, images, labels)]
  try:
    benches += [TorchBench(s, images, labels, mode) for mode in modes]
  except ImportError as e:
    sys.exit(f'benchmark: error: the PyTorch reference needs torch ({e}); '
             'pip install -e ".[bench]", or pass --reference=none')

  print(f'jal benchmark: {s.network} width {s.width}, {s.dtype}, train batch {s.batch_size} x '
        f'{s.train_steps} steps, eval batch {s.eval_batch_size}, pool {s.pool_size}, PAL round '
        f'{s.round_labeled} labeled + {s.round_unlabeled} unlabeled -> {s.round_budget} '
        f'({s.round_epochs} epochs), median of {s.repeats}')
  print(f'hardware: {_hardware()}; jax {jax.__version__} on {jax.default_backend()}', end='')
  if modes:
    import torch  # pylint: disable=g-import-not-at-top
    print(f', torch {torch.__version__} ({torch.get_num_threads()} threads)', end='')
  print(flush=True)

  figures: dict[str, dict[str, Figure]] = {}
  for workload in workloads:
    for bench in benches:
      fig = getattr(bench, workload)()
      figures.setdefault(workload, {})[bench.name] = fig
      print(f'  {workload:10s} {bench.name:14s} {_describe(workload, fig)}   '
            f'(compile {fig.compile_seconds:.2f} s)', flush=True)

  if modes:
    print('ratios (jal / PyTorch; > 1: jal is faster)')
    for workload in workloads:
      jal_fig = figures[workload]['jal']
      ratios = [f'vs {b.name}: {figures[workload][b.name].seconds / jal_fig.seconds:.2f}x'
                for b in benches[1:]]
      print(f'  {workload:10s} ' + '   '.join(ratios))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump({'settings': s.to_dict(), 'hardware': _hardware(),
                 'figures': {w: {b: dataclasses.asdict(fig) for b, fig in by.items()}
                             for w, by in figures.items()}}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
