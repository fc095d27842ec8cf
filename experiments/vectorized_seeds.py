r"""Seeds trained together (vmapped) against one after another: the fit of one round.

`jal.train.fit_trials` trains T task models, one per seed, in one program
vmapped over the seeds; `jal.train.fit` trains one. This script times one
round's fit of T seeds both ways, on the same pools, in the same run, and
prints the ratio (sequential / vmapped: above 1 means vmapping is faster).
Compilation is excluded (a first fit of each kind warms up).

  python experiments/vectorized_seeds.py                     # small CNN, width 16
  python experiments/vectorized_seeds.py --network=resnet18 --width=64 --labeled=5000

`jal.comparison.run_comparison` vectorises seeds (`jal.trials.run_trials`) by
default only on GPU/TPU (`jal.platform.vectorized_members`).
"""

from __future__ import annotations

import time

from absl import app, flags
import jax
import numpy as np

import _bench
from jal import rng, sharding, strategies, train
from jal.task import make_task

_TRIALS = flags.DEFINE_integer('trials', 3, 'Seeds trained together.')
_LABELED = flags.DEFINE_integer('labeled', 1000, 'Labeled pool of each seed.')
_NETWORK = flags.DEFINE_enum('network', 'small_cnn', ['small_cnn', 'resnet18'], 'Task network.')
_WIDTH = flags.DEFINE_integer('width', 16, 'Network width.')
_EPOCHS = flags.DEFINE_integer('epochs', 2, 'Epochs per fit.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch size.')


def main(argv):
  del argv
  n = 4 * _LABELED.value
  generator = np.random.default_rng(0)
  dataset = _bench.synthetic_dataset(n, generator)
  labels = dataset.train_labels
  config = _bench.protocol()
  config.model.name, config.model.width = _NETWORK.value, _WIDTH.value
  config.train = train.train_config(epochs=_EPOCHS.value, batch_size=_BATCH.value)
  config.strategy.name = 'random'
  mesh = sharding.make_mesh()
  strategy = strategies.build(config, dataset.pool_data(), make_task(dataset.class_names), mesh)
  trainer = strategy.trainer
  device_images = jax.device_put(dataset.train_images, sharding.replicated(mesh))
  trials = range(_TRIALS.value)
  pools = [np.sort(generator.choice(n, _LABELED.value, replace=False)) for _ in trials]
  device_labels = []
  for pool in pools:
    oracle = np.full(n, -1, np.int32)
    oracle[pool] = labels[pool]
    device_labels.append(jax.device_put(oracle))
  keys = [rng.key(0, 'bench', t) for t in trials]

  def one_by_one():
    return [train.fit(trainer, trainer.init(rng.key(0, 'init', t)), device_images,
                      device_labels[t], pools[t], epochs=_EPOCHS.value, key=keys[t])[0]
            for t in trials]

  def together():
    return train.fit_trials(trainer, [trainer.init(rng.key(0, 'init', t)) for t in trials],
                            device_images, device_labels, pools, epochs=_EPOCHS.value,
                            keys=keys)[0]

  def timed(fn):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start

  timed(one_by_one), timed(together)  # compile
  sequential, vmapped = timed(one_by_one), timed(together)
  device = jax.devices()[0]
  print(f'{_TRIALS.value} seeds x {_LABELED.value} labels, {_NETWORK.value} width '
        f'{_WIDTH.value}, {_EPOCHS.value} epochs, batch {_BATCH.value}, on '
        f'{jax.device_count()} x {device.device_kind} ({device.platform})')
  print(f'  one after another {sequential:8.2f} s')
  print(f'  vmapped together  {vmapped:8.2f} s')
  print(f'  ratio (one after another / together) {sequential / vmapped:.2f}')


if __name__ == '__main__':
  app.run(main)
