"""Training on a labeled and an unlabeled batch per step (VAAL, TA-VAAL, MAL).

The methods that play a game between the labeled and the unlabeled pool
update several networks in each iteration, from a labeled batch and an
unlabeled batch: VAAL's and TA-VAAL's task model, VAE and discriminator
(TA-VAAL's Algorithm 1), MAL's encoder, classifier and discriminator (MAL's
Algorithm 1). A `JointTrainer` runs such an iteration as one compiled step,
however many optimisers it updates, on `jal.train.epochs.EpochLoop` like
every fit: an epoch is one pass over the labeled pool (``ceil(n_L / B)``
steps), each step taking the next batch of a shuffled order of the labeled
pool and of the unlabeled pool (wrapping around: the unlabeled pool is
usually much larger, and a new order is drawn each epoch).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import numpy as np

from jal.errors import JalError
from jal.train import epochs as epochs_lib

# step_fn(state, images, labels, idx_l, mask_l, idx_u, schedule, key) ->
#   (state, metrics): images uint8 [N, H, W, C] and labels int32 [N] on the
#   device; idx_l int32 [B] the labeled batch, mask_l float32 [B] (0 marks
#   padding); idx_u int32 [B] the unlabeled batch (all real); schedule a dict
#   of float32 scalars (at least 'progress') and int32 'epoch'; key the
#   step's PRNG key.
JointStepFn = Callable[..., tuple[Any, dict[str, Any]]]


class JointTrainer:
  """Compiles a labeled+unlabeled step and runs epochs of it.

  Args:
    step_fn: see `JointStepFn`.
    batch_size: ``B``, of both the labeled and the unlabeled batch.
    mesh: the ``('data',)`` device mesh.
    compiled_epochs: an epoch as one compiled loop (True) or a host loop of
      compiled steps (False); None: `jal.platform.compiled_loops`.
  """

  def __init__(self, step_fn: JointStepFn, *, batch_size: int, mesh: jax.sharding.Mesh,
               compiled_epochs: bool | None = None):
    self.step_fn = step_fn
    self.batch_size = batch_size
    self.loop = epochs_lib.EpochLoop(self._step, order_keys=self._order_keys,
                                     step_key=self._step_key, batch_size=batch_size, mesh=mesh,
                                     compiled=compiled_epochs)
    self.replicated = self.loop.replicated

  @property
  def trace_counts(self) -> dict[str, int]:
    """How often the epoch and the step were traced."""
    return dict(self.loop.trace_counts)

  def _order_keys(self, state, key, schedule):
    del state
    key = jax.random.fold_in(key, schedule['epoch'])
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)

  def _step_key(self, state, key, schedule, i):
    del state
    return jax.random.fold_in(jax.random.fold_in(key, schedule['epoch']), 2 + i)

  def _step(self, state, data, batches, schedule, key):
    images, labels = data
    (idx_l, mask_l), (idx_u, _) = batches
    return self.step_fn(state, images, labels, idx_l, mask_l, idx_u, schedule, key)

  def fit(self, state: Any, images: jax.Array, labels: jax.Array, labeled: np.ndarray,
          unlabeled: np.ndarray, *, epochs: int, schedule_fn: Callable[[int], dict[str, Any]],
          key: jax.Array, description: str) -> tuple[Any, dict[str, float]]:
    """Trains ``state`` for ``epochs`` passes over the labeled pool.

    Args:
      state: the pytree `step_fn` updates (donated).
      images: uint8 device array ``[N, H, W, C]``; labels: int32 ``[N]``.
      labeled: int ``[n_L]``, ``n_L >= 1``: the labeled pool.
      unlabeled: int ``[n_U]``, ``n_U >= 1``: the unlabeled pool.
      epochs: number of passes over the labeled pool.
      schedule_fn: epoch -> dict of float32 NumPy scalars (learning rates,
        ``progress``); ``epoch`` (int32) is added.
      key: PRNG key of the orders and of every step.
      description: label of the progress bar and of errors.

    Returns:
      The trained state and the last epoch's metrics, exact means over the
      labeled pool's real examples.

    Raises:
      JalError: a pool is empty, or a metric became NaN or infinite.
    """
    if np.size(unlabeled) == 0:
      raise JalError(f'{description}: the unlabeled pool is empty, and this method learns from '
                     'it; lower config.num_rounds or config.budget')
    capacity = images.shape[0]
    pools = (epochs_lib.padded_pool(labeled, capacity, self.replicated, description),
             epochs_lib.padded_pool(unlabeled, capacity, self.replicated, description))
    num_steps = -(-int(np.size(labeled)) // self.batch_size)
    epoch_fn = self.loop.epoch_function((images, labels), pools, key, num_steps)
    return epochs_lib.run_epochs(
        epoch_fn, state, epochs=epochs,
        schedule_fn=lambda epoch: {**schedule_fn(epoch), 'epoch': np.int32(epoch)},
        sharding=self.replicated, description=description)
