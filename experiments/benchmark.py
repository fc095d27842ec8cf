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
figure. Where the backend counts it, each row also gives the peak device
memory: PyTorch's since the row began, JAX's the process's so far (JAX cannot
reset it; `_bench.peak_device_bytes`). The ratios jal / PyTorch come last.
On a GPU everything runs on the GPU.

  pip install -e ".[bench]"
  python experiments/benchmark.py --preset=cpu           # here: 2 CPU cores
  python experiments/benchmark.py --preset=gpu --dtype=bfloat16

``--reference=none`` measures jal alone (no PyTorch needed). ``--json=FILE``
also writes every figure as JSON.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from typing import Callable

from absl import app, flags
import jax
import ml_collections
import numpy as np

import _bench
from jal import sharding, strategies, train
from jal.models import ClassifierHead, MultiHeadNet, RotationHead, compute_dtype, get_backbone
from jal.objectives.classification import cross_entropy_loss
from jal.pool import Pool
from jal.strategies import base, pal
from jal.task import make_task
from jal.train import inference

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
_SIZES = _bench.size_flags(
    width='Channels of the first stage.',
    batch_size='Training batch size.',
    train_steps='Training steps per measurement.',
    eval_batch_size='Inference and scoring batch.',
    pool_size='Images in the inference / scoring pool.',
    round_labeled='Labeled pool of the PAL round (0: skip).',
    round_unlabeled='Unlabeled pool of the PAL round.',
    round_budget='Query size of the PAL round.',
    round_epochs='Epochs of the task model and scorer.',
    repeats='Timed repeats after the compiling one.')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'Compute dtype (parameters stay float32; PyTorch uses autocast).')
_REFERENCE = flags.DEFINE_list('reference', ['eager', 'compile'],
                               'PyTorch modes to measure: eager, compile, or none.')
_ONLY = flags.DEFINE_list('only', ['train', 'inference', 'pal_score', 'pal_round'],
                          'Workloads to run.')
_JSON = flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')

NUM_CLASSES = _bench.NUM_CLASSES
CROP_PAD = 4
FINETUNE_EPOCHS = 5  # PAL's g' (jal's default for the paper's unstated value)
NUM_SUBQUERIES = 5


@dataclasses.dataclass
class Figure:
  """One measurement: steady median seconds, first-call (compile) seconds and
  the peak device memory (`_bench.peak_device_bytes`; None: not known)."""
  seconds: float
  compile_seconds: float
  items: int  # images processed per call (0 for whole-round timings)
  peak_bytes: int | None = None

  @property
  def per_second(self) -> float:
    return self.items / self.seconds

  @classmethod
  def of(cls, timing: _bench.Timing, items: int) -> 'Figure':
    return cls(timing.median, timing.compile_seconds, items, timing.peak_bytes)


# -------------------------------------------------------------------- jal ---


def _train_config(batch_size: int, epochs: int, learning_rate: float = 0.01):
  return train.train_config(optimizer='sgd', learning_rate=learning_rate, momentum=0.9,
                            weight_decay=5e-4, epochs=epochs, batch_size=batch_size,
                            crop_pad=CROP_PAD, flip=True)


def _jal_model(s, rotation: bool):
  heads = {'classifier': ClassifierHead(NUM_CLASSES)}
  if rotation:
    heads['rotation'] = RotationHead()
  return MultiHeadNet(get_backbone(s.network, width=s.width, dtype=compute_dtype(s.dtype)),
                      heads)


def _logits(outputs):
  return outputs['classifier']


class JalBench:
  """jal's side: the library's own Trainer, fit, predict and PAL strategy."""

  name = 'jal'

  def __init__(self, s, dataset):
    self.s = s
    self.dataset = dataset
    self.mesh = sharding.make_mesh()
    on_device = sharding.replicated(self.mesh)
    self.images = jax.device_put(dataset.train_images, on_device)
    self.labels = jax.device_put(dataset.train_labels, on_device)

  def _trainer(self, model, batch_size, epochs, loss=cross_entropy_loss):
    return train.Trainer(model, loss, _train_config(batch_size, epochs), self.dataset.spec,
                         self.mesh)

  def train(self) -> Figure:
    s = self.s
    trainer = self._trainer(_jal_model(s, rotation=False), s.batch_size, 1)
    indices = np.arange(s.batch_size * s.train_steps)
    state = [trainer.init(jax.random.key(0))]

    def run():
      state[0], _ = train.fit(trainer, state[0], self.images, self.labels, indices, epochs=1,
                              key=jax.random.key(1))
    return Figure.of(_bench.measure(run, s.repeats), indices.size)

  def inference(self) -> Figure:
    s = self.s
    trainer = self._trainer(_jal_model(s, rotation=False), s.batch_size, 1)
    variables = trainer.init(jax.random.key(0)).variables
    indices = np.arange(s.pool_size)
    timing = _bench.measure(
        lambda: trainer.predict(variables, self.images, indices, _logits, s.eval_batch_size),
        s.repeats)
    return Figure.of(timing, indices.size)

  def pal_score(self) -> Figure:
    s = self.s
    model = _jal_model(s, rotation=True)
    trainer = self._trainer(model, s.batch_size, 1)
    variables = trainer.init(jax.random.key(0)).variables
    spec = self.dataset.spec
    score = jax.jit(functools.partial(pal.score_batch, model, spec.mean, spec.std, lambda s: s))
    indices = np.arange(s.pool_size)
    timing = _bench.measure(
        lambda: inference.map_batches(score, (variables, self.images), indices,
                                      s.eval_batch_size, trainer.batch_sharding), s.repeats)
    return Figure.of(timing, indices.size)

  def pal_round(self) -> Figure:
    """A round as `jal.experiment.run` does it, without the file writing."""
    s = self.s
    config = _bench.protocol()
    config.model.name, config.model.width, config.model.dtype = s.network, s.width, s.dtype
    config.train = _train_config(s.batch_size, s.round_epochs)
    config.eval_batch_size = s.eval_batch_size
    config.strategy.name = 'pal'
    cfg = config.strategy.pal
    cfg.num_subqueries = NUM_SUBQUERIES
    cfg.scoring_model.update(name=s.network, width=s.width, dtype=s.dtype)
    cfg.scoring_train = _train_config(s.batch_size, s.round_epochs)
    cfg.finetune = _train_config(s.batch_size, FINETUNE_EPOCHS)
    _, run = pal_round_call(config, self.dataset, self.images, self.mesh, s.round_labeled,
                            s.round_unlabeled, s.round_budget)
    return Figure.of(_bench.measure(run, s.repeats), 0)


def pal_round_call(config: ml_collections.ConfigDict, dataset, images: jax.Array, mesh,
                   num_labeled: int, num_unlabeled: int,
                   budget: int) -> tuple[base.Strategy, Callable[[], np.ndarray]]:
  """The strategy of ``config`` and a function that runs one round of it as
  `jal.experiment.run` does (fit the task model from scratch, then query
  ``budget``), without the file writing, on the first ``num_labeled`` images
  labeled and the next ``num_unlabeled`` as candidates.

  The strategy and its compiled functions are built once, here; each call
  reads the epochs anew (``config.train.epochs``, the strategy's
  ``settings``), so a caller may change them between calls without a
  recompilation.

  Args:
    config: an experiment config (`_bench.protocol`); its ``budget`` is set here.
    dataset: the `jal.data.Dataset` whose train split ``images`` holds.
    images: uint8 device array, ``dataset``'s train images.
    mesh: the device mesh.
    num_labeled, num_unlabeled, budget: the round's sizes.
  """
  config.budget = budget
  n = num_labeled + num_unlabeled
  dataset = dataclasses.replace(dataset, train_images=dataset.train_images[:n],
                                train_labels=dataset.train_labels[:n])
  task = make_task(dataset.class_names)
  strategy = strategies.build(config, dataset.pool_data(), task, mesh)
  labeled = np.arange(num_labeled)
  pool = Pool(n, np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
      labeled, dataset.train_labels[labeled])
  labels = jax.device_put(task.label_array(pool), sharding.replicated(mesh))
  images = images[:n]

  def run():
    fitted = strategy.fit(strategy.trainer.init(jax.random.key(0)), images, labels, pool,
                          key=jax.random.key(1), description='round task model')
    model = base.TaskModel(strategy.trainer, fitted.state.variables, config.eval_batch_size)
    ctx = base.RoundContext(config, strategy.data, 0, pool, images, labels, pool.unlabeled,
                            model, mesh, fitted=fitted.aux)
    return strategy.query(ctx, budget)
  return strategy, run


# ---------------------------------------------------------------- PyTorch ---


class TorchBench:
  """The PyTorch reference (`torch_reference`) in one mode: eager or compiled."""

  def __init__(self, s, dataset, mode: str):
    import torch  # pylint: disable=g-import-not-at-top
    import torch_reference  # pylint: disable=g-import-not-at-top
    self.torch, self.ref, self.s, self.mode = torch, torch_reference, s, mode
    self.name = f'torch {mode}'
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    self.images = torch.from_numpy(dataset.train_images).to(self.device)
    self.labels = torch.from_numpy(dataset.train_labels.astype(np.int64)).to(self.device)
    self.mean = torch.from_numpy(dataset.mean).to(self.device)
    self.std = torch.from_numpy(dataset.std).to(self.device)
    self.compile = mode == 'compile'

  def _figure(self, work, items: int) -> Figure:
    """Times ``work()`` under autocast (with ``--dtype=bfloat16``), synchronised."""
    torch = self.torch

    def run():
      with torch.autocast(self.device.type, dtype=torch.bfloat16,
                          enabled=self.s.dtype == 'bfloat16'):
        work()
      if self.device.type == 'cuda':
        torch.cuda.synchronize()
    if self.device.type == 'cuda':
      torch.cuda.reset_peak_memory_stats()
    return Figure.of(_bench.measure(run, self.s.repeats,
                                    peak=lambda: _bench.peak_device_bytes(torch)), items)

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
    return self._figure(
        lambda: trainer.fit(self.images, self.labels, indices, 1, s.batch_size, seed=1),
        indices.size)

  def _eval_network(self):
    model = self._network().eval()
    return self.ref.compiled(model) if self.compile else model

  def _pool_pass(self, fn) -> Figure:
    """Times ``fn`` (`torch_reference.predict` or `pal_scores`) over the pool."""
    s = self.s
    model = self._eval_network()
    indices = np.arange(s.pool_size)
    return self._figure(
        lambda: fn(model, self.images, indices, s.eval_batch_size, self.mean, self.std),
        indices.size)

  def inference(self) -> Figure:
    return self._pool_pass(self.ref.predict)

  def pal_score(self) -> Figure:
    return self._pool_pass(self.ref.pal_scores)

  def pal_round(self) -> Figure:
    s = self.s
    n = s.round_labeled + s.round_unlabeled
    return self._figure(lambda: self.ref.pal_round(
        self.images[:n], self.labels[:n], np.arange(s.round_labeled),
        np.arange(s.round_labeled, n), s.round_budget, task_network=s.network,
        scoring_network=s.network, width_task=s.width, width_scoring=s.width,
        num_classes=NUM_CLASSES, epochs_task=s.round_epochs,
        epochs_scoring=s.round_epochs, epochs_finetune=FINETUNE_EPOCHS,
        num_subqueries=NUM_SUBQUERIES, batch_size=s.batch_size,
        eval_batch_size=s.eval_batch_size, learning_rate=0.01,
        finetune_learning_rate=0.01, crop_pad=CROP_PAD, flip=True, mean=self.mean,
        std=self.std, compile=self.compile, seed=0), 0)


# ------------------------------------------------------------------ report ---


def _settings() -> ml_collections.ConfigDict:
  return _bench.settings(PRESETS, _PRESET.value, [_NETWORK, *_SIZES], dtype=_DTYPE.value)


def _describe(workload: str, fig: Figure) -> str:
  if workload in ('train', 'inference'):
    return f'{fig.per_second:12,.0f} images/s'
  if workload == 'pal_score':
    return f'{fig.seconds:10.3f} s ({fig.per_second:,.0f} images/s, x4 rotations)'
  return f'{fig.seconds:10.2f} s'


def main(argv):
  del argv
  s = _settings()
  workloads = [w for w in _ONLY.value
               if w != 'pal_round' or (s.round_labeled > 0 and s.round_budget > 0)]
  modes = [m for m in _REFERENCE.value if m != 'none']
  n = max(s.batch_size * s.train_steps, s.pool_size, s.round_labeled + s.round_unlabeled)
  dataset = _bench.synthetic_dataset(n)

  benches = [JalBench(s, dataset)]
  try:
    benches += [TorchBench(s, dataset, mode) for mode in modes]
  except ImportError as e:
    sys.exit(f'benchmark: error: the PyTorch reference needs torch ({e}); '
             'pip install -e ".[bench]", or pass --reference=none')

  print(f'jal benchmark: {s.network} width {s.width}, {s.dtype}, train batch {s.batch_size} x '
        f'{s.train_steps} steps, eval batch {s.eval_batch_size}, pool {s.pool_size}, PAL round '
        f'{s.round_labeled} labeled + {s.round_unlabeled} unlabeled -> {s.round_budget} '
        f'({s.round_epochs} epochs), median of {s.repeats}')
  print(_bench.versions(benches[1].torch if modes else None), flush=True)

  figures: dict[str, dict[str, Figure]] = {}
  for workload in workloads:
    for bench in benches:
      fig = getattr(bench, workload)()
      figures.setdefault(workload, {})[bench.name] = fig
      print(f'  {workload:10s} {bench.name:14s} {_describe(workload, fig)}   '
            f'(compile {fig.compile_seconds:.2f} s){_bench.memory_text(fig.peak_bytes)}',
            flush=True)

  if modes:
    print('ratios (jal / PyTorch; > 1: jal is faster)')
    for workload in workloads:
      jal_fig = figures[workload]['jal']
      ratios = [f'vs {b.name}: {figures[workload][b.name].seconds / jal_fig.seconds:.2f}x'
                for b in benches[1:]]
      print(f'  {workload:10s} ' + '   '.join(ratios))
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump({'settings': s.to_dict(), 'hardware': _bench.hardware(),
                 'figures': {w: {b: dataclasses.asdict(fig) for b, fig in by.items()}
                             for w, by in figures.items()}}, f, indent=1)


if __name__ == '__main__':
  app.run(main)
