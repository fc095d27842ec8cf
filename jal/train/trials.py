"""Several trials (seeds) of one fit, vmapped into one program.

The trials of a comparison train the same task model on pools of one size
with different seeds; `fit_trials` trains T of them at once, each on its own
pool, labels and keys, as T calls of `jal.train.fit` would (the same batches,
augmentation and updates; the numbers agree up to floating-point
reassociation). Whether that is faster is the backend's question
(`jal.platform.vectorized_members`): on CPU, vmapped convolutions are slow.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jal.errors import JalError
from jal.train import epochs as epochs_lib
from jal.train.state import TrainState
from jal.train.trainer import Trainer, epoch_schedule


def fit_trials(trainer: Trainer, states: Sequence[TrainState], images: jax.Array,
               labels: Sequence[jax.Array], indices: Sequence[np.ndarray], *, epochs: int,
               keys: Sequence[jax.Array],
               description: str = 'train') -> tuple[list[TrainState], list[dict[str, float]]]:
  """`jal.train.fit` for T trials at once, vmapped over the trials in one program.

  Trial ``t`` trains ``states[t]`` on ``indices[t]`` with ``labels[t]`` and
  ``keys[t]``. The pools must have the same size, as the trials of a
  comparison do; the images are shared.

  Args:
    trainer: the compiled steps (the same for every trial).
    states: T initial states (donated).
    images: uint8 device array ``[N, H, W, C]``, shared.
    labels: T int32 device arrays ``[N]``.
    indices: T int arrays ``[n]``, one size.
    epochs: number of passes.
    keys: T PRNG keys.
    description: label of the progress bar and of errors.

  Returns:
    The T trained states and each trial's last-epoch mean metrics.

  Raises:
    JalError: pools of different sizes, or a metric of any trial became NaN
      or infinite.
  """
  sizes = sorted({int(np.size(i)) for i in indices})
  if len(sizes) != 1 or not len(states) == len(labels) == len(indices) == len(keys) >= 1:
    raise JalError(f'{description}: trials trained together need pools of one size, got '
                   f'{sizes} for {len(states)} trials')
  cfg = trainer.train_config
  padded = [epochs_lib.padded_pool(i, images.shape[0], trainer.replicated, description)
            for i in indices]
  pool = (jnp.stack([p for p, _ in padded]), padded[0][1])
  num_steps = -(-sizes[0] // cfg.batch_size)
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  epoch_fn = trainer.loop.epoch_function((images, jnp.stack(list(labels))), (pool,),
                                         jnp.stack(list(keys)), num_steps, trials=True)
  stacked, metrics = epochs_lib.run_epochs(
      epoch_fn, stacked, epochs=epochs,
      schedule_fn=lambda epoch: epoch_schedule(cfg, epoch, epochs),
      sharding=trainer.replicated, description=description)
  trials = range(len(states))
  return ([jax.tree.map(lambda x, t=t: x[t], stacked) for t in trials],
          [{k: float(np.asarray(v)[t]) for k, v in metrics.items()} for t in trials])
