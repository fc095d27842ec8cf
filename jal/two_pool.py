"""Training on a labeled and an unlabeled batch per step (VAAL, TA-VAAL, MAL).

The methods that play a game between the labeled and the unlabeled pool
update several networks in each iteration, from a labeled batch and an
unlabeled batch: VAAL's and TA-VAAL's task model, VAE and discriminator (TA-VAAL
Algorithm 1), MAL's encoder, classifier and discriminator (MAL Algorithm 1). A
`TwoPoolTrainer` runs such an iteration as one compiled step, however many
optimisers it updates, and drives it like `jal.training.fit` drives a task
model: an epoch is one pass over the labeled pool (``ceil(n_L / B)`` steps),
each step takes the next labeled batch of a shuffled order and the next
unlabeled batch of a shuffled order of the unlabeled pool (wrapping around:
the unlabeled pool is usually much larger, and a new order is drawn each
epoch). Both orders live on the device; the host sends a schedule per epoch
and reads back the epoch's mean metrics, which are checked for NaN.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jal import adversarial, sharding, training
from jal.errors import JalError

# step_fn(state, images, labels, idx_l, mask_l, idx_u, schedule, key) ->
#   (state, metrics): images uint8 [N, H, W, C] and labels int32 [N] on the
#   device; idx_l int32 [B] the labeled batch, mask_l float32 [B] (0 marks
#   padding); idx_u int32 [B] the unlabeled batch (all real); schedule a dict
#   of float32 scalars (at least 'progress'); key the step's PRNG key.
StepFn = Callable[..., tuple[Any, dict[str, jax.Array]]]


class TwoPoolTrainer:
  """Compiles a two-pool step and runs epochs of it.

  Args:
    step_fn: see `StepFn`.
    batch_size: ``B``, of both the labeled and the unlabeled batch.
    mesh: the ``('data',)`` device mesh.
    compiled_epochs: an epoch as one compiled ``lax.fori_loop`` (True) or a
      host loop over the compiled step (False); None: True on GPU/TPU, False
      on CPU (see `jal.training.Trainer`).
  """

  def __init__(self, step_fn: StepFn, *, batch_size: int, mesh: jax.sharding.Mesh,
               compiled_epochs: bool | None = None):
    sharding.check_batch_size(batch_size, mesh, 'batch_size')
    self.step_fn = step_fn
    self.batch_size = batch_size
    self.replicated = sharding.replicated(mesh)
    self.batch_sharding = sharding.batch_sharded(mesh)
    if compiled_epochs is None:
      compiled_epochs = jax.default_backend() != 'cpu'
    self.compiled_epochs = compiled_epochs
    self.trace_counts = {'epoch': 0, 'step': 0}
    self._start = jax.jit(self._start_impl)
    self._step = jax.jit(self._step_impl, donate_argnums=(0, 1))
    self._epoch = jax.jit(self._epoch_impl, donate_argnums=(0,))

  def _start_impl(self, state, images, labels, pool_l, n_l, pool_u, n_u, schedule, key):
    """The epoch's two shuffled orders and zeroed metric sums."""
    key = jax.random.fold_in(key, schedule['epoch'])
    order_l = training.shuffled(pool_l, n_l, jax.random.fold_in(key, 0))
    order_u = training.shuffled(pool_u, n_u, jax.random.fold_in(key, 1))
    dummy = jnp.zeros(self.batch_size, jnp.int32)
    shapes = jax.eval_shape(self.step_fn, state, images, labels, dummy,
                            dummy.astype(jnp.float32), dummy, schedule, key)[1]
    totals = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return order_l, order_u, totals

  def _body(self, i, state, totals, images, labels, order_l, n_l, order_u, n_u, schedule, key):
    """Step ``i`` of the epoch: the ``i``-th batch of each order."""
    constrain = lambda x: jax.lax.with_sharding_constraint(x, self.batch_sharding)
    idx_l, mask_l = training.batch_at(order_l, n_l, i, self.batch_size)
    idx_u, _ = training.batch_at(order_u, n_u, i, self.batch_size)
    step_key = jax.random.fold_in(jax.random.fold_in(key, schedule['epoch']), 2 + i)
    state, metrics = self.step_fn(state, images, labels, constrain(idx_l), constrain(mask_l),
                                  constrain(idx_u), schedule, step_key)
    return state, jax.tree.map(jnp.add, totals, metrics)

  def _step_impl(self, state, totals, *args):
    self.trace_counts['step'] += 1
    *args, i = args
    return self._body(i, state, totals, *args)

  def _epoch_impl(self, state, images, labels, pool_l, n_l, pool_u, n_u, schedule, key):
    self.trace_counts['epoch'] += 1
    order_l, order_u, totals = self._start_impl(state, images, labels, pool_l, n_l, pool_u, n_u,
                                                schedule, key)
    steps = (n_l + self.batch_size - 1) // self.batch_size

    def body(i, carry):
      return self._body(i, *carry, images, labels, order_l, n_l, order_u, n_u, schedule, key)

    return jax.lax.fori_loop(0, steps, body, (state, totals))

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
      description: label of the progress display and of errors.

    Returns:
      The trained state and the last epoch's mean metrics.

    Raises:
      JalError: a pool is empty, or a metric became NaN or infinite.
    """
    if np.size(unlabeled) == 0:
      raise JalError(f'{description}: the unlabeled pool is empty, and this method learns from '
                     'it; lower config.num_rounds or config.budget')
    capacity = images.shape[0]
    pool_l, n_l = training.padded_pool(labeled, capacity, self.replicated, description)
    pool_u, n_u = training.padded_pool(unlabeled, capacity, self.replicated, description)
    num_steps = -(-int(np.size(labeled)) // self.batch_size)
    # The host loop's step numbers, placed once per fit rather than once per step.
    step_ids = [] if self.compiled_epochs else [
        jax.device_put(np.int32(i), self.replicated) for i in range(num_steps)]

    def epoch_fn(state, schedule):
      args = (images, labels, pool_l, n_l, pool_u, n_u, schedule, key)
      if self.compiled_epochs:
        return self._epoch(state, *args)
      order_l, order_u, totals = self._start(state, *args)
      for i in step_ids:
        state, totals = self._step(state, totals, images, labels, order_l, n_l, order_u, n_u,
                                   schedule, key, i)
      return state, totals

    return training.run_epochs(
        epoch_fn, state, epochs=epochs, num_steps=num_steps,
        schedule_fn=lambda epoch: {**schedule_fn(epoch), 'epoch': np.int32(epoch)},
        sharding=self.replicated, description=description)


def discriminator_step(apply_fn: Callable[..., jax.Array], tx: Any, state: training.TrainState,
                       inputs_l: tuple, inputs_u: tuple, mask_l: jax.Array, mask_u: jax.Array,
                       learning_rate: jax.Array) -> tuple[training.TrainState, dict]:
  """One update of a labeledness discriminator D, and its diagnostics.

  The step VAAL, TA-VAAL (Eq. 6) and MAL (Eq. 3) share: D descends on
  `jal.adversarial.discriminator_loss` (1 = labeled) of its logits on the
  two batches; the inputs carry no gradient to whatever produced them.

  Args:
    apply_fn: ``apply_fn(variables, *inputs) -> logits [B]`` (a flax apply).
    tx: D's optimiser (`jal.optim.make_optimizer`).
    state: D's `TrainState` (no batch statistics).
    inputs_l, inputs_u: D's inputs on the labeled and the unlabeled batch
      (e.g. ``(mu, r)``), stopped from the gradient.
    mask_l, mask_u: float32 ``[B]``, 0 on padding.
    learning_rate: float32 scalar.

  Returns:
    The new state and ``discriminator_loss``, ``discriminator_accuracy``,
    ``discriminator_mean_labeled``, ``discriminator_mean_unlabeled`` (of
    the logits before the update).
  """
  inputs_l, inputs_u = jax.lax.stop_gradient((inputs_l, inputs_u))

  def loss_fn(params):
    logits_l = apply_fn({'params': params}, *inputs_l)
    logits_u = apply_fn({'params': params}, *inputs_u)
    return adversarial.discriminator_loss(logits_l, logits_u, mask_l, mask_u), (logits_l,
                                                                                 logits_u)

  (loss, (logits_l, logits_u)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = training.apply_gradients(tx, state, grads, {}, learning_rate)
  means = adversarial.discriminator_means(logits_l, logits_u, mask_l, mask_u)
  return state, {'discriminator_loss': loss,
                 'discriminator_accuracy': adversarial.discriminator_accuracy(
                     logits_l, logits_u, mask_l, mask_u),
                 'discriminator_mean_labeled': means['labeled'],
                 'discriminator_mean_unlabeled': means['unlabeled']}
