"""Epochs on the device: shuffled pools, fixed-size batches, exact epoch means.

One driver runs the epochs of every compiled step in jal: the task model's
(`jal.train.Trainer`, one pool) and the labeled+unlabeled steps of VAAL,
TA-VAAL and MAL (`jal.train.JointTrainer`, two pools). Per epoch it shuffles
each pool on the device, and step ``i`` takes batch ``i`` of every shuffled
order: ``ceil(n_0 / B)`` steps over the first pool, the other pools wrapping
around. Pools are index arrays padded to the split's size, so every pool
size shares one compilation; batches have one fixed size, the last one
filled with real examples that get mask 0.

How an epoch runs is `jal.platform.compiled_loops`'s choice: one compiled
``lax.fori_loop`` with a traced trip count (GPU, TPU), or a host loop that
calls the compiled step once per batch (CPU). Neither moves data between
host and device inside an epoch; both give the same numbers.

The metrics of an epoch are exact means over its real examples: each step's
metrics (means over its batch's real examples) are weighted by the number of
real examples of the first pool's batch, summed on the device, and divided
by the total once per epoch.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jal import platform, sharding as sharding_lib
from jal.errors import JalError

# step_fn(state, data, batches, schedule, key) -> (state, metrics): data a
#   pytree of device arrays the step reads (the images and labels); batches
#   one (idx int32 [B], mask float32 [B]) per pool; schedule a dict of float32
#   scalars (learning rates, 'progress'); key the step's PRNG key. metrics is
#   a dict of float32 scalars, each a mean over the batch's real examples.
StepFn = Callable[..., tuple[Any, dict[str, jax.Array]]]
# order_keys(state, key, schedule) -> one PRNG key per pool, for the epoch's shuffles.
OrderKeys = Callable[[Any, jax.Array, dict], Sequence[jax.Array]]
# step_key(state, key, schedule, i) -> the PRNG key of step i.
StepKey = Callable[[Any, jax.Array, dict, jax.Array], jax.Array]


def shuffled(pool: jax.Array, num_valid: jax.Array, key: jax.Array) -> jax.Array:
  """int32 ``[N]``: a random permutation of ``pool[:num_valid]``, then the padding.

  Args:
    pool: int32 ``[N]`` indices, the first ``num_valid`` real.
    num_valid: int32 scalar (may be traced).
    key: PRNG key of the permutation.
  """
  position = jnp.arange(pool.shape[0])
  noise = jax.random.uniform(key, pool.shape)
  return pool[jnp.argsort(jnp.where(position < num_valid, noise, 2.0))]


def batch_at(order: jax.Array, num_valid: jax.Array, step: jax.Array,
             batch_size: int) -> tuple[jax.Array, jax.Array]:
  """Batch ``step`` of an epoch over ``order[:num_valid]``: ``(idx, mask)``.

  ``idx`` int32 ``[B]`` is ``order[step B : (step + 1) B]``; past
  ``num_valid`` it wraps around to the start of the order (real images, so
  batch norm sees real statistics) and ``mask`` float32 ``[B]`` is 0 there.
  """
  position = step * batch_size + jnp.arange(batch_size)
  return order[position % num_valid], (position < num_valid).astype(jnp.float32)


def padded_pool(indices: np.ndarray, capacity: int, sharding: jax.sharding.Sharding,
                description: str) -> tuple[jax.Array, jax.Array]:
  """``indices`` as a device array padded to ``capacity``, and their number.

  Padding every pool to the split's size lets every pool size share one
  compiled epoch.

  Returns:
    int32 ``[capacity]`` and int32 scalar ``n``, placed with ``sharding``.

  Raises:
    JalError: ``indices`` is empty or longer than ``capacity``.
  """
  indices = np.asarray(indices)
  if not 1 <= indices.size <= capacity:
    raise JalError(f'{description}: cannot train on {indices.size} examples of a split of '
                   f'{capacity}; the labeled pool (or query) must not be empty')
  padded = np.zeros(capacity, np.int32)
  padded[:indices.size] = indices
  return jax.device_put(padded, sharding), jax.device_put(np.int32(indices.size), sharding)


class EpochLoop:
  """Epochs of a compiled step over shuffled pools, on the device.

  Args:
    step_fn: see `StepFn`.
    order_keys: see `OrderKeys` (how each epoch's shuffles are keyed).
    step_key: see `StepKey` (how each step is keyed).
    batch_size: ``B``, of every pool's batches.
    mesh: the ``('data',)`` device mesh; batches are split over it.
    compiled: an epoch as one compiled loop (True) or a host loop of
      compiled steps (False); None: `jal.platform.compiled_loops`.
    trial_data_axes: for `run_trial_epoch`: the vmap axes of ``data`` (e.g.
      ``(None, 0)``: the images shared, the labels one row per trial).

  ``trace_counts`` counts how often the epoch and the step were traced (one
  compilation each, whatever the pool size).
  """

  def __init__(self, step_fn: StepFn, *, order_keys: OrderKeys, step_key: StepKey,
               batch_size: int, mesh: jax.sharding.Mesh, compiled: bool | None = None,
               trial_data_axes: Any = None):
    sharding_lib.check_batch_size(batch_size, mesh, 'batch_size')
    self.step_fn = step_fn
    self.order_keys = order_keys
    self.step_key = step_key
    self.batch_size = batch_size
    self.replicated = sharding_lib.replicated(mesh)
    self.batch_sharding = sharding_lib.batch_sharded(mesh)
    self.compiled = platform.compiled_loops(compiled)
    self.trial_data_axes = trial_data_axes
    self.trace_counts = {'epoch': 0, 'step': 0}
    self._functions = {}

  # -- the traced functions --------------------------------------------------------

  def _start(self, state, data, pools, schedule, key):
    """The epoch's shuffled orders, zeroed metric sums and a zero count."""
    keys = self.order_keys(state, key, schedule)
    orders = tuple(shuffled(pool, n, k) for (pool, n), k in zip(pools, keys))
    dummy = (jnp.zeros(self.batch_size, jnp.int32), jnp.zeros(self.batch_size, jnp.float32))
    shapes = jax.eval_shape(self.step_fn, state, data, (dummy,) * len(pools), schedule, key)[1]
    totals = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return orders, totals, jnp.zeros((), jnp.float32)

  def _body(self, i, carry, data, orders, pools, schedule, key):
    """Step ``i``: batch ``i`` of every order; the metrics weighted by its real examples."""
    state, totals, count = carry
    constrain = lambda x: jax.lax.with_sharding_constraint(x, self.batch_sharding)
    batches = tuple(tuple(map(constrain, batch_at(order, n, i, self.batch_size)))
                    for order, (_, n) in zip(orders, pools))
    state, metrics = self.step_fn(state, data, batches, schedule,
                                  self.step_key(state, key, schedule, i))
    weight = jnp.sum(batches[0][1])
    totals = jax.tree.map(lambda t, m: t + m * weight, totals, metrics)
    return state, totals, count + weight

  def _epoch(self, state, data, pools, schedule, key):
    self.trace_counts['epoch'] += 1
    orders, totals, count = self._start(state, data, pools, schedule, key)
    steps = (pools[0][1] + self.batch_size - 1) // self.batch_size
    return jax.lax.fori_loop(
        0, steps, lambda i, c: self._body(i, c, data, orders, pools, schedule, key),
        (state, totals, count))

  def _step(self, carry, data, orders, pools, schedule, key, i):
    self.trace_counts['step'] += 1
    return self._body(i, carry, data, orders, pools, schedule, key)

  def _compiled_functions(self, trials: bool, num_pools: int) -> dict[str, Callable]:
    """The jitted epoch, start and step (vmapped over a leading trial axis with ``trials``)."""
    if (trials, num_pools) not in self._functions:
      epoch, start, step = self._epoch, self._start, self._step
      if trials:
        data, pools = self.trial_data_axes, ((0, None),) * num_pools
        epoch = jax.vmap(epoch, in_axes=(0, data, pools, None, 0))
        start = jax.vmap(start, in_axes=(0, data, pools, None, 0))
        step = jax.vmap(step, in_axes=(0, data, 0, pools, None, 0, None))
      self._functions[trials, num_pools] = {
          'epoch': jax.jit(epoch, donate_argnums=(0,)), 'start': jax.jit(start),
          'step': jax.jit(step, donate_argnums=(0,))}
    return self._functions[trials, num_pools]

  # -- running -----------------------------------------------------------------------

  def start_epoch(self, state: Any, data: Any, pools: Sequence[tuple[jax.Array, jax.Array]],
                  schedule: dict, key: jax.Array) -> tuple[tuple[jax.Array, ...], Any, jax.Array]:
    """An epoch's shuffled orders (one per pool), zeroed metric sums and count, compiled."""
    return self._compiled_functions(False, len(pools))['start'](state, data, tuple(pools),
                                                                 schedule, key)

  def epoch_function(self, data: Any, pools: Sequence[tuple[jax.Array, jax.Array]],
                     key: jax.Array, num_steps: int, trials: bool = False
                     ) -> Callable[[Any, dict], tuple[Any, Any, jax.Array]]:
    """``(state, schedule) -> (state, metric sums, count)``: one epoch, for `run_epochs`.

    Args:
      data: the pytree the step reads (on the device).
      pools: one ``(padded indices, n)`` per pool (`padded_pool`); with
        ``trials``, the indices have a leading trial axis.
      key: the fit's PRNG key (one per trial with ``trials``).
      num_steps: ``ceil(n_0 / B)`` (the host knows ``n_0``).
      trials: run T trials at once, vmapped over a leading axis of the
        state, the key, the pools' indices and ``trial_data_axes`` of ``data``.
    """
    pools = tuple(pools)
    fns = self._compiled_functions(trials, len(pools))
    # The host loop's step numbers, placed once per fit rather than once per step.
    step_ids = [] if self.compiled else [jax.device_put(np.int32(i), self.replicated)
                                          for i in range(num_steps)]

    def epoch_fn(state, schedule):
      if self.compiled:
        return fns['epoch'](state, data, pools, schedule, key)
      orders, totals, count = fns['start'](state, data, pools, schedule, key)
      carry = (state, totals, count)
      for i in step_ids:
        carry = fns['step'](carry, data, orders, pools, schedule, key, i)
      return carry

    return epoch_fn


def run_epochs(epoch_fn: Callable[[Any, Any], tuple[Any, Any, jax.Array]], state: Any, *,
               epochs: int, schedule_fn: Callable[[int], dict[str, Any]],
               sharding: jax.sharding.Sharding, description: str) -> tuple[Any, dict[str, Any]]:
  """The host loop over epochs shared by every fit: schedule, NaN check, progress.

  Args:
    epoch_fn: ``(state, schedule) -> (state, metric sums, count)``, one epoch
      on the device (``schedule`` a dict of device scalars); see
      `EpochLoop.epoch_function`.
    state: the initial state.
    epochs: number of epochs.
    schedule_fn: epoch number -> dict of NumPy scalars.
    sharding: where the schedule is placed.
    description: label of the progress bar and of errors.

  Returns:
    The final state and the last epoch's metrics: means over its real
    examples, Python floats (NumPy arrays ``[T]`` for trials).

  Raises:
    JalError: a metric became NaN or infinite (seen one epoch late: each
      epoch's metrics are read once the next epoch is dispatched). The run
      stops there; rounds already finished are in the work directory.
  """
  # A bar on a terminal only (tqdm's disable=None), unless TQDM_DISABLE says
  # otherwise; logs get the round summaries.
  quiet = {} if os.environ.get('TQDM_DISABLE') else {'disable': None}
  bar = tqdm(total=epochs, desc=description, leave=False, dynamic_ncols=True, **quiet)

  def read(epoch, sums, count):
    """Epoch ``epoch``'s metrics, read back (this waits for that epoch only)."""
    sums, count = jax.device_get((sums, count))
    count = np.maximum(np.asarray(count, np.float64), 1.0)
    metrics = {k: _scalar_or_array(np.asarray(v, np.float64) / count) for k, v in sums.items()}
    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v).all())
    if bad:
      bar.close()
      raise JalError(f"{description}: {', '.join(bad)} became non-finite in epoch {epoch + 1} "
                     f'({metrics}); lower the learning rate (finished rounds are kept in the '
                     'work directory)')
    bar.set_postfix_str(f"loss {np.mean(metrics.get('loss', np.nan)):.3f}", refresh=False)
    bar.update(1)
    return metrics

  # Each epoch's metrics are read after the next epoch is dispatched, so the
  # device never waits for the host between epochs.
  metrics, behind = {}, None
  for epoch in range(epochs):
    state, sums, count = epoch_fn(state, jax.device_put(schedule_fn(epoch), sharding))
    if behind is not None:
      metrics = read(*behind)
    behind = (epoch, sums, count)
  if behind is not None:
    metrics = read(*behind)
  bar.close()
  return state, metrics


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
  return float(value) if value.ndim == 0 else value
