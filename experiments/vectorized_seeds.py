r"""Seeds trained together (vmapped) against one after another: the fit of one round.

`jal.training.fit_trials` trains T task models, one per seed, in one program
vmapped over the seeds; `jal.training.fit` trains one. This script times one
round's fit of T seeds both ways, on the same pools, in the same run, and
prints the ratio (sequential / vmapped: above 1 means vmapping is faster).
Compilation is excluded (a first fit of each kind warms up).

  python experiments/vectorized_seeds.py                     # small CNN, width 16
  python experiments/vectorized_seeds.py --network=resnet18 --width=64 --labeled=5000

`jal.comparison.run_comparison` vectorises seeds by default only on GPU/TPU.
"""

from __future__ import annotations

import time

from absl import app, flags
import jax
import numpy as np

from jal import config_util, progress, rng, sharding, strategies, training
from jal.data.dataset import Dataset

_TRIALS = flags.DEFINE_integer('trials', 3, 'Seeds trained together.')
_LABELED = flags.DEFINE_integer('labeled', 1000, 'Labeled pool of each seed.')
_NETWORK = flags.DEFINE_enum('network', 'small_cnn', ['small_cnn', 'resnet18'], 'Task network.')
_WIDTH = flags.DEFINE_integer('width', 16, 'Network width.')
_EPOCHS = flags.DEFINE_integer('epochs', 2, 'Epochs per fit.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch size.')


def main(argv):
  del argv
  progress.set_enabled(False)
  n, classes = 4 * _LABELED.value, 10
  generator = np.random.default_rng(0)
  images = generator.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
  labels = generator.integers(0, classes, n).astype(np.int32)
  dataset = Dataset('synthetic', images, labels, images[:1], labels[:1],
                    tuple(map(str, range(classes))), True, np.full(3, 0.5, np.float32),
                    np.full(3, 0.25, np.float32))
  config = config_util.base_config()
  config.model.name, config.model.width = _NETWORK.value, _WIDTH.value
  config.train = config_util.train_config(epochs=_EPOCHS.value, batch_size=_BATCH.value)
  mesh = sharding.make_mesh()
  strategy = strategies.get('random')(config, dataset, mesh)
  trainer = training.Trainer(strategy.task_model(classes), config.train, strategy.task_loss,
                             dataset.mean, dataset.std, dataset.flip, mesh, (32, 32, 3))
  device_images = jax.device_put(images, sharding.replicated(mesh))
  trials = range(_TRIALS.value)
  pools = [np.sort(generator.choice(n, _LABELED.value, replace=False)) for _ in trials]
  device_labels = []
  for pool in pools:
    oracle = np.full(n, -1, np.int32)
    oracle[pool] = labels[pool]
    device_labels.append(jax.device_put(oracle))
  keys = [rng.key(0, 'bench', t) for t in trials]

  def one_by_one():
    return [training.fit(trainer, trainer.init(rng.key(0, 'init', t)), device_images,
                         device_labels[t], pools[t], epochs=_EPOCHS.value, key=keys[t])[0]
            for t in trials]

  def together():
    return training.fit_trials(trainer, [trainer.init(rng.key(0, 'init', t)) for t in trials],
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
