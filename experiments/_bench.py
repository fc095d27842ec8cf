"""What the timing scripts of ``experiments/`` share.

- `hardware`, `versions`: the machine and the libraries, in the words of the
  scripts' header lines (BENCHMARKS.md quotes them).
- `measure`: first-call and steady-state seconds of a blocking call.
- `size_flags`, `settings`: a preset's sizes with the flags that override them.
- `protocol`: an experiment config of ``configs/`` (or the base config).
- `synthetic_dataset`: random uint8 32x32x3 images with random labels, as a
  `jal.data.Dataset` (the timed work does not depend on the pixels).
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

from jal.data import Dataset

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


@dataclasses.dataclass
class Timing:
  """Seconds of a first (compiling) call and of the timed calls after it."""
  first: float
  times: list[float]

  @property
  def median(self) -> float:
    """The timed calls' median (the first call's seconds when there were none)."""
    return statistics.median(self.times) if self.times else self.first

  @property
  def compile_seconds(self) -> float:
    """The first call's excess over the median (NaN without timed calls)."""
    return max(0.0, self.first - self.median) if self.times else float('nan')


def measure(run: Callable[..., Any], repeats: int,
            setup: Callable[[], Any] | None = None) -> Timing:
  """Times ``run`` once and then ``repeats`` more times; ``run`` must block.

  Args:
    run: the work; called with ``setup()``'s result when ``setup`` is given.
    repeats: timed calls after the first.
    setup: untimed work before each call (a fresh state, say).
  """
  times = []
  for _ in range(1 + repeats):
    args = () if setup is None else (setup(),)
    start = time.perf_counter()
    run(*args)
    times.append(time.perf_counter() - start)
  return Timing(times[0], times[1:])


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
