"""What the timing scripts of ``experiments/`` share.

- `hardware`, `versions`: the machine and the libraries, in the words of the
  scripts' header lines (BENCHMARKS.md quotes them).
- `measure`: first-call and steady-state seconds of a blocking call, and the
  peak device memory after it (`peak_device_bytes`, `memory_text`).
- `size_flags`, `settings`: a preset's sizes with the flags that override them.
- `protocol`: an experiment config of ``configs/`` (or the base config).
- `synthetic_dataset`: random uint8 32x32x3 images with random labels, as a
  `jal.data.Dataset` (the timed work does not depend on the pixels).
- `query_config`, `time_query`: one strategy's query on a freshly initialised
  task model, timed (`experiments/query_time.py`, `experiments/device_check.py`).
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Mapping, Sequence

from absl import flags
import jax
import ml_collections
import numpy as np

from jal import rng, sharding, strategies
from jal.data import Dataset
from jal.pool import Pool
from jal.strategies import base, mc_dropout
from jal.task import make_task

# The flags `size_flags` defines belong to the script that calls it (its --helpshort).
flags.disclaim_key_flags()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
# CIFAR-10-like normalisation (no work depends on the values).
MEAN = np.array([0.49, 0.48, 0.45], np.float32)
STD = np.array([0.25, 0.24, 0.26], np.float32)


def hardware() -> str:
  """The devices and host measured on, in words."""
  device = jax.devices()[0]
  cpu = f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})'
  if device.platform == 'cpu':
    return cpu
  return f'{jax.device_count()} x {device.device_kind}, {cpu}'


def versions(torch: Any = None) -> str:
  """``'hardware: ...; jax V on BACKEND'``, plus ``', torch V (N threads)'`` given the module."""
  line = f'hardware: {hardware()}; jax {jax.__version__} on {jax.default_backend()}'
  if torch is not None:
    line += f', torch {torch.__version__} ({torch.get_num_threads()} threads)'
  return line


def peak_device_bytes(torch: Any = None) -> int | None:
  """The most bytes allocated on the first device so far, where the backend tells.

  JAX: its allocator's ``memory_stats()['peak_bytes_in_use']`` (GPU, TPU),
  the peak of the whole process: JAX cannot reset it, so after several
  measurements it is the largest of theirs. With ``torch`` (the module):
  `torch.cuda.max_memory_allocated`, since the last
  ``torch.cuda.reset_peak_memory_stats()``.

  Returns:
    Bytes, or None where the backend keeps no such count (JAX on the CPU,
    PyTorch without CUDA).
  """
  if torch is not None:
    return int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else None
  stats = jax.devices()[0].memory_stats()
  return int(stats['peak_bytes_in_use']) if stats and 'peak_bytes_in_use' in stats else None


def memory_text(peak_bytes: int | None) -> str:
  """``'   peak device memory 1.23 GB'``, or ``''`` for None (not known)."""
  return '' if peak_bytes is None else f'   peak device memory {peak_bytes / 1e9:.2f} GB'


@dataclasses.dataclass
class Timing:
  """Seconds of a first (compiling) call and of the timed calls after it, and
  the peak device memory after them (`peak_device_bytes`; None: not known)."""
  first: float
  times: list[float]
  peak_bytes: int | None = None

  @property
  def median(self) -> float:
    """The timed calls' median (the first call's seconds when there were none)."""
    return statistics.median(self.times) if self.times else self.first

  @property
  def compile_seconds(self) -> float:
    """The first call's excess over the median (NaN without timed calls)."""
    return max(0.0, self.first - self.median) if self.times else float('nan')


def measure(run: Callable[..., Any], repeats: int,
            setup: Callable[[], Any] | None = None,
            peak: Callable[[], int | None] = peak_device_bytes) -> Timing:
  """Times ``run`` once and then ``repeats`` more times; ``run`` must block.

  Args:
    run: the work; called with ``setup()``'s result when ``setup`` is given.
    repeats: timed calls after the first.
    setup: untimed work before each call (a fresh state, say).
    peak: read after the calls: the peak device bytes (default JAX's,
      `peak_device_bytes`).
  """
  times = []
  for _ in range(1 + repeats):
    args = () if setup is None else (setup(),)
    start = time.perf_counter()
    run(*args)
    times.append(time.perf_counter() - start)
  return Timing(times[0], times[1:], peak())


def size_flags(**helps: str) -> list[flags.FlagHolder]:
  """Integer flags ``--<name>`` (help ``helps[name]``), unset by default: each
  overrides the preset's size of its name in `settings`."""
  return [flags.DEFINE_integer(name, None, text) for name, text in helps.items()]


def settings(presets: Mapping[str, Mapping[str, Any]], preset: str,
             overrides: Sequence[Any], **fixed: Any) -> ml_collections.ConfigDict:
  """The sizes of ``presets[preset]``, each flag of ``overrides`` that is set replacing the
  size of its name (absl ``FlagHolder``s, unset = None), and the ``fixed`` values."""
  s = ml_collections.ConfigDict(dict(presets[preset]))
  for flag in overrides:
    if flag.value is not None:
      s[flag.name] = flag.value
  s.update(fixed)
  return s


def protocol(name: str | None = None, arg: str | None = None) -> ml_collections.ConfigDict:
  """``configs/<name>.py``'s ``get_config(arg)``; for None, ``configs.common.base()``.

  Config files import ``configs.common``, which resolves from the repository
  root: it goes on ``sys.path``.
  """
  if REPO not in sys.path:
    sys.path.insert(0, REPO)
  if name is None:
    return importlib.import_module('configs.common').base()
  return importlib.import_module(f'configs.{name}').get_config(arg)


def synthetic_dataset(n: int, generator: np.random.Generator | None = None) -> Dataset:
  """``n`` random uint8 `IMAGE_SHAPE` images with random labels of `NUM_CLASSES` classes.

  The images are drawn first, then the labels, from ``generator`` (default
  ``np.random.default_rng(0)``). The test split is the first image, flips keep
  labels, and `MEAN` and `STD` normalise.
  """
  generator = np.random.default_rng(0) if generator is None else generator
  images = generator.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
  labels = generator.integers(0, NUM_CLASSES, n).astype(np.int32)
  return Dataset('synthetic', images, labels, images[:1], labels[:1],
                 tuple(str(c) for c in range(NUM_CLASSES)), True, MEAN, STD)


def query_pool(s: Mapping[str, Any], mesh) -> tuple[Dataset, jax.Array, jax.Array]:
  """The synthetic pool of a query benchmark: ``s['labeled']`` labeled then
  ``s['candidates']`` unlabeled images, and its images and labels (-1 where
  unlabeled) on the devices of ``mesh``."""
  n = s['labeled'] + s['candidates']
  dataset = synthetic_dataset(n)
  on_device = sharding.replicated(mesh)
  images = jax.device_put(dataset.train_images, on_device)
  labels = jax.device_put(np.where(np.arange(n) < s['labeled'], dataset.train_labels, -1),
                          on_device)
  return dataset, images, labels


def query_config(s: Mapping[str, Any], name: str) -> ml_collections.ConfigDict:
  """The base protocol set to query with strategy ``name`` on ``s``'s task model.

  ``s`` holds ``network``, ``width``, ``dtype``, ``eval_batch_size``,
  ``num_mc_samples`` and ``mc_batch_size``.
  """
  config = protocol()
  config.model.name = s['network']
  config.model.width = s['width']
  config.model.dtype = s['dtype']
  config.eval_batch_size = s['eval_batch_size']
  config.strategy.name = name
  for section in ('mc_dropout', 'batchbald'):  # BatchBALD: BALD's passes, then its greedy
    config.strategy[section].num_mc_samples = s['num_mc_samples']
    config.strategy[section].mc_batch_size = s['mc_batch_size']
  # TypiClust and ProbCover train their self-supervised network before the first
  # query (`time_query`, not timed): one epoch, as their query's cost does not depend on its quality.
  config.initial_pool.simclr_train.epochs = 1
  return config


def time_query(s: Mapping[str, Any], name: str, dataset: Dataset, images: jax.Array,
               labels: jax.Array, mesh) -> dict:
  """Compile seconds and the median seconds of ``s['repeats']`` queries of ``name``.

  The first ``s['labeled']`` images of ``dataset`` are labeled, the rest are
  the candidates; the task model (`query_config`) is freshly initialised (a
  query's cost does not depend on the weights) and ``strategy.query(ctx,
  s['budget'])`` is timed to the returned indices.

  The first query compiles. MC-dropout strategies warm up on one chunk of
  candidates (their compiled functions have fixed chunk shapes, so the full
  query compiles nothing more, and a second full query of T passes would
  double the run) and are timed ``s['mc_repeats']`` times; the others warm up
  on the full query (CoreSet's greedy is compiled for the number of
  candidates) and are timed ``s['repeats']`` times. Compile time is the
  warm-up's time minus its share of the steady-state time.

  Returns:
    ``{'seconds': median, 'compile_seconds', 'all_seconds': [...],
    'peak_bytes': peak_device_bytes() after the queries}``.
  """
  config = query_config(s, name)
  strategy = strategies.build(config, dataset.pool_data(), make_task(dataset.class_names), mesh)
  trainer = strategy.trainer
  variables = trainer.init(rng.key(0, f'query_time_{name}')).variables
  task = base.TaskModel(trainer, variables, config.eval_batch_size)
  n = dataset.num_train
  labeled = np.arange(s['labeled'])
  pool = Pool(n, np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
      labeled, dataset.train_labels[labeled])
  candidates = pool.unlabeled

  def query(candidates, budget):
    ctx = base.RoundContext(config, strategy.data, 0, pool, images, labels, candidates, task,
                            mesh)
    start = time.perf_counter()
    picked = strategy.query(ctx, budget)
    seconds = time.perf_counter() - start
    assert np.unique(picked).size == min(budget, candidates.size), name
    return seconds

  chunked = isinstance(strategy, mc_dropout.Strategy)
  if hasattr(strategy, 'train_features'):  # TypiClust, ProbCover: their network, untimed
    strategy.train_features()
  warm = candidates[:max(s['eval_batch_size'], s['mc_batch_size'])] if chunked else candidates
  first = query(warm, min(s['budget'], warm.size))
  repeats = s['mc_repeats'] if chunked else s['repeats']
  times = [query(candidates, s['budget']) for _ in range(repeats)]
  median = statistics.median(times)
  compile_seconds = max(first - median * warm.size / candidates.size, 0.0)
  return {'seconds': median, 'compile_seconds': compile_seconds, 'all_seconds': times,
          'peak_bytes': peak_device_bytes()}
