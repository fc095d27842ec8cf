"""Fitting a network on a set of pool indices with one compiled train step.

A `Trainer` binds a model, an optimiser and a loss once per experiment; its
train step and predict functions are compiled once and reused in every round
(the pool grows, the shapes do not). `fit` is the thin host loop over epochs.

A whole epoch is one compiled loop (``lax.fori_loop`` over batches, with a
trip count that is a traced value, so a growing pool does not recompile): it
shuffles the pool's indices on the device, gathers each batch's uint8 images
by index from the device-resident dataset, augments and normalises them, and
updates. The host sends the pool's indices once per `fit` and a learning rate
(and the training progress) per epoch, and reads back only the epoch's metrics.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jal import augment, inference, optim, rng, sharding
from jal.errors import JalError
from jal.progress import Progress

# loss_fn(apply_fn, variables, images, labels, mask, key, progress) ->
#   (loss, (new_model_state, metrics)); images float32 [B, H, W, C] normalised,
#   labels int32 [B], mask float32 [B] (0 marks padding), key for dropout etc.,
#   progress a float32 scalar: the fraction of the fit's epochs finished before
#   this one (0 in the first epoch), for objectives that change during training
#   (Learning Loss stops the loss-prediction gradient into the backbone at 0.6).
LossFn = Callable[..., tuple[jax.Array, tuple[Any, dict[str, jax.Array]]]]


class TrainState(struct.PyTreeNode):
  """Everything a train step reads and writes; donated to the step."""
  step: jax.Array
  params: Any
  batch_stats: Any
  opt_state: Any

  @property
  def variables(self) -> dict[str, Any]:
    return {'params': self.params, 'batch_stats': self.batch_stats}


def _schedule_spec():
  return {'learning_rate': jnp.float32(0), 'progress': jnp.float32(0)}


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of ``values`` [B] over entries where ``mask`` [B] is 1."""
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def with_learning_rate(opt_state: Any, learning_rate: jax.Array) -> Any:
  """``opt_state`` of a `jal.optim.make_optimizer` optimiser with its learning rate set."""
  return opt_state._replace(hyperparams={**opt_state.hyperparams, 'learning_rate': learning_rate})


def apply_gradients(tx: optax.GradientTransformation, state: TrainState, grads: Any,
                    batch_stats: Any, learning_rate: jax.Array) -> TrainState:
  """One step of ``tx`` (a `jal.optim.make_optimizer` optimiser) on ``state``.

  For the auxiliary networks updated inside a compiled step (a VAE, a
  discriminator), whose batch-norm statistics ``batch_stats`` come from the
  same forward pass as ``grads``.
  """
  opt_state = with_learning_rate(state.opt_state, learning_rate)
  updates, opt_state = tx.update(grads, opt_state, state.params)
  return TrainState(step=state.step + 1, params=optax.apply_updates(state.params, updates),
                    batch_stats=batch_stats, opt_state=opt_state)


def init_state(tx: optax.GradientTransformation, variables: dict[str, Any]) -> TrainState:
  """A `TrainState` of freshly initialised ``variables`` and ``tx``'s zero state."""
  params = variables['params']
  return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                    batch_stats=variables.get('batch_stats', {}), opt_state=tx.init(params))


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


def cross_entropy_loss(apply_fn, variables, images, labels, mask, key, progress):
  """Standard supervised loss: softmax cross-entropy of the ``'classifier'`` head.

  ``key`` drives dropout, if the model has any (MC-dropout strategies).
  """
  del progress
  outputs, new_state = apply_fn(variables, images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  logits = outputs['classifier']
  loss = masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), mask)
  accuracy = masked_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), mask)
  return loss, (new_state['batch_stats'], {'loss': loss, 'accuracy': accuracy})


@dataclasses.dataclass(eq=False)
class Trainer:
  """A model, its optimiser and loss, and their compiled steps.

  Attributes:
    model: a flax module called as ``model.apply(variables, x, train=...)``
      returning a dict of outputs.
    train_config: ``optimizer``, ``learning_rate``, schedule, ``epochs``,
      ``batch_size``, ``crop_pad``, ``weight_decay``, ... (see configs).
    loss_fn: see `LossFn`.
    mean, std: float32 ``[C]``, normalisation of the uint8 images.
    flip: whether training flips images horizontally at random.
    mesh: the ``('data',)`` device mesh.
    image_shape: ``(H, W, C)`` of the inputs.
    trainable: optional function from the top-level parameter name (e.g.
      ``'backbone'``, ``'heads_rotation'``) to whether it is updated; frozen
      parameters get no update at all (weight decay included). None: all.
    freeze_after: top-level parameter name -> fraction of the epochs after
      which (``progress >=``) it gets no update at all (TA-VAAL's ranker,
      updated for the first 80% of the epochs: ``{'heads_loss_prediction': 0.8}``).
    views: augmented views of each batch image the loss sees (2 for the
      supervised contrastive loss of SCAL). The loss gets ``views * B``
      images, view-major (every image's first view, then every second view),
      with the labels and mask repeated alike.

  ``train_config.compiled_epochs`` chooses how an epoch runs: as one compiled
  loop (True) or as a host loop over a compiled step (False); None (default)
  picks True on GPU/TPU and False on CPU, where XLA runs convolutions in loop
  bodies slowly. Both give the same result and neither moves data between
  host and device inside an epoch.
  """
  model: nn.Module
  train_config: ml_collections.ConfigDict
  loss_fn: LossFn
  mean: np.ndarray
  std: np.ndarray
  flip: bool
  mesh: jax.sharding.Mesh
  image_shape: tuple[int, int, int]
  trainable: Callable[[str], bool] | None = None
  freeze_after: dict[str, float] | None = None
  views: int = 1

  def __post_init__(self):
    if self.train_config.batch_size < 1 or self.train_config.epochs < 0:
      raise JalError(f'batch_size={self.train_config.batch_size} and epochs='
                     f'{self.train_config.epochs} must be at least 1 and 0')
    if self.views < 1:
      raise JalError(f'views={self.views} must be at least 1')
    self.tx = optim.make_optimizer(self.train_config)
    self.trace_counts = {'train_epoch': 0, 'train_step': 0, 'predict': 0}
    self.compiled_epochs = self.train_config.get('compiled_epochs')
    if self.compiled_epochs is None:
      # XLA:CPU runs convolutions inside loop bodies many times slower than
      # outside (jax-ml/jax#12868; 37-68x for the small CNN here, measured by
      # experiments/profile_convolutions.py), so on CPU an epoch is a host loop
      # over compiled steps.
      self.compiled_epochs = jax.default_backend() != 'cpu'
    # Stand-ins for the dataset when only the metrics' shapes are wanted.
    self._images_spec = jax.ShapeDtypeStruct((1, *self.image_shape), jnp.uint8)
    self._labels_spec = jax.ShapeDtypeStruct((1,), jnp.int32)
    self.replicated = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharded(self.mesh)
    sharding.check_batch_size(self.train_config.batch_size, self.mesh, 'batch_size')
    self._init = jax.jit(self._init_impl, out_shardings=self.replicated)
    self._from_variables = jax.jit(self._from_variables_impl, out_shardings=self.replicated)
    self.train_epoch = jax.jit(self._train_epoch_impl, donate_argnums=(0,))
    self.train_step = jax.jit(self._train_step_impl, donate_argnums=(0, 1))
    self._start_epoch_jit = jax.jit(self._start_epoch)
    self._predict = {}
    self._trials = None  # the vmapped functions of `run_trial_epochs`, built on first use

  # -- initialisation ---------------------------------------------------------

  def _init_impl(self, key):
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    return init_state(self.tx, self.model.init({'params': rng.init_key(key)}, x, train=False))

  def init(self, key: jax.Array) -> TrainState:
    """A fresh state: parameters drawn with ``key``, optimiser state zero."""
    return self._init(key)

  def from_variables(self, variables: dict[str, Any]) -> TrainState:
    """A state holding a copy of ``variables`` and a fresh optimiser state.

    Used to fine-tune a copy of a network (PAL's ``g'``) and to warm-start the
    task model from the previous round.
    """
    return self._from_variables(jax.device_put(variables, self.replicated))

  def _from_variables_impl(self, variables):
    # The outputs of a jitted function are fresh buffers: a copy.
    return init_state(self.tx, variables)

  # -- the compiled train step --------------------------------------------------

  def prepare(self, key: jax.Array, images: jax.Array, idx: jax.Array) -> jax.Array:
    """The training input ``images[idx]``: augmented (crop, flip) and normalised.

    Args:
      key: PRNG key of the augmentation.
      images: uint8 ``[N, H, W, C]`` on the device.
      idx: int32 ``[B]``.

    Returns:
      float32 ``[B, H, W, C]``.
    """
    x = augment.augment(key, images[idx], crop_pad=self.train_config.get('crop_pad', 0),
                        flip=self.flip and self.train_config.get('flip', True))
    return augment.normalize(x, self.mean, self.std)

  def update(self, state: TrainState, x: jax.Array, y: jax.Array, mask: jax.Array,
             schedule: dict[str, jax.Array], key: jax.Array) -> tuple[TrainState, Any]:
    """One optimiser step on the loss of a prepared batch (traced inside a compiled step).

    Args:
      state: the `TrainState`.
      x: float32 ``[B, H, W, C]``, from `prepare`.
      y: int32 ``[B]`` labels; mask: float32 ``[B]`` (0 marks padding).
      schedule: ``learning_rate`` and ``progress``, float32 scalars.
      key: the loss's PRNG key (dropout).

    Returns:
      The new state and the loss's metrics.
    """
    def loss(params):
      return self.loss_fn(self.model.apply, {'params': params, 'batch_stats': state.batch_stats},
                          x, y, mask, key, schedule['progress'])

    (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    opt_state = with_learning_rate(state.opt_state, schedule['learning_rate'])
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    updates = dict(updates)
    if self.trainable is not None:
      updates = {name: u if self.trainable(name) else jax.tree.map(jnp.zeros_like, u)
                 for name, u in updates.items()}
    for name, fraction in (self.freeze_after or {}).items():
      frozen = schedule['progress'] >= fraction
      updates[name] = jax.tree.map(lambda u: jnp.where(frozen, jnp.zeros_like(u), u),
                                   updates[name])
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats,
                           opt_state=opt_state)
    return new_state, metrics

  def _train_step(self, state, images, labels, idx, mask, schedule, key):
    """One update on the batch ``images[idx]`` (traced inside `_train_epoch_impl`).

    With ``views > 1`` each image is augmented ``views`` times independently.
    """
    aug_key, loss_key = jax.random.split(jax.random.fold_in(key, state.step))
    if self.views == 1:
      return self.update(state, self.prepare(aug_key, images, idx), labels[idx], mask, schedule,
                         loss_key)
    x = jnp.concatenate([self.prepare(k, images, idx)
                         for k in jax.random.split(aug_key, self.views)])
    return self.update(state, x, jnp.tile(labels[idx], self.views), jnp.tile(mask, self.views),
                       schedule, loss_key)

  def _start_epoch(self, state, pool, num_valid, key):
    """An epoch's shuffled order, zeroed metric sums and its first step number.

    ``order`` int32 ``[N]`` holds a random permutation of ``pool[:num_valid]``
    first and the padding after it; the permutation folds ``state.step`` into
    ``key``, so every epoch draws afresh.
    """
    order = shuffled(pool, num_valid, jax.random.fold_in(jax.random.split(key)[0], state.step))
    dummy = jnp.zeros(self.train_config.batch_size, jnp.int32)
    shapes = jax.eval_shape(self._train_step, state, self._images_spec, self._labels_spec,
                            dummy, dummy.astype(jnp.float32), _schedule_spec(), key)[1]
    totals = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    return order, totals, jnp.copy(state.step)

  def _epoch_step(self, state, totals, images, labels, order, num_valid, first_step, schedule,
                  key):
    """Step ``i = state.step - first_step`` of an epoch: batch ``order[iB:(i+1)B]``.

    The last batch is filled up with examples from the start of the shuffled
    order (real images, so batch norm sees real statistics) that get mask 0,
    so they add nothing to the loss. Returns the new state and the metric sums.
    """
    idx, mask = batch_at(order, num_valid, state.step - first_step,
                         self.train_config.batch_size)
    idx = jax.lax.with_sharding_constraint(idx, self.batch_sharding)
    mask = jax.lax.with_sharding_constraint(mask, self.batch_sharding)
    state, metrics = self._train_step(state, images, labels, idx, mask, schedule,
                                      jax.random.split(key)[1])
    return state, jax.tree.map(jnp.add, totals, metrics)

  def _train_epoch_impl(self, state, images, labels, pool, num_valid, schedule, key):
    """A whole epoch as one compiled loop (``lax.fori_loop`` over its batches).

    The trip count ``ceil(num_valid / B)`` is a traced value, so one
    compilation serves every pool size. Returns the state and metric sums.
    """
    self.trace_counts['train_epoch'] += 1
    order, totals, first_step = self._start_epoch(state, pool, num_valid, key)
    steps = (num_valid + self.train_config.batch_size - 1) // self.train_config.batch_size

    def body(_, carry):
      return self._epoch_step(*carry, images, labels, order, num_valid, first_step, schedule,
                              key)

    return jax.lax.fori_loop(0, steps, body, (state, totals))

  def run_epoch(self, state: TrainState, images: jax.Array, labels: jax.Array,
                pool: jax.Array, num_valid: jax.Array, num_steps: int,
                schedule: dict[str, jax.Array], key: jax.Array) -> tuple[TrainState, Any]:
    """One epoch over ``pool[:num_valid]``, all on the device.

    Args:
      state: `TrainState` (donated).
      images: uint8 device array ``[N, H, W, C]``; labels: int32 ``[N]``.
      pool: int32 device array ``[N]``: the indices to train on, then padding.
      num_valid: int32 device scalar ``n >= 1``, the real entries of ``pool``.
      num_steps: ``ceil(n / B)`` (the host knows ``n``).
      schedule: this epoch's ``learning_rate`` and ``progress`` (the fraction
        of the fit's epochs already done), float32 device scalars.
      key: the fit's PRNG key.

    Returns:
      ``(state, sums)``: the metrics summed over the epoch's steps, on the
      device. Either one call of the compiled epoch loop, or (with
      ``compiled_epochs`` off) ``num_steps`` calls of the compiled step that
      read their batch from the device-side order: no host round-trip either way.
    """
    if self.compiled_epochs:
      return self.train_epoch(state, images, labels, pool, num_valid, schedule, key)
    order, totals, first_step = self._start_epoch_jit(state, pool, num_valid, key)
    for _ in range(num_steps):
      state, totals = self.train_step(state, totals, images, labels, order, num_valid,
                                      first_step, schedule, key)
    return state, totals

  def _train_step_impl(self, *args):
    self.trace_counts['train_step'] += 1
    return self._epoch_step(*args)

  # -- several trials in one program ------------------------------------------

  def _trial_functions(self) -> dict[str, Callable]:
    """`_train_epoch_impl`, `_start_epoch` and `_epoch_step` vmapped over a leading trial axis.

    The state, the labels, the pool order and the key have one row per
    trial; the images, the number of real pool entries and the schedule are
    shared.
    """
    if self._trials is None:
      self._trials = {
          'epoch': jax.jit(jax.vmap(self._train_epoch_impl, in_axes=(0, None, 0, 0, None, None, 0)),
                           donate_argnums=(0,)),
          'start': jax.jit(jax.vmap(self._start_epoch, in_axes=(0, 0, None, 0))),
          'step': jax.jit(jax.vmap(self._train_step_impl,
                                   in_axes=(0, 0, None, 0, 0, None, 0, None, 0)),
                          donate_argnums=(0, 1)),
      }
    return self._trials

  def run_trial_epochs(self, states: TrainState, images: jax.Array, labels: jax.Array,
                       pools: jax.Array, num_valid: jax.Array, num_steps: int,
                       schedule: dict[str, jax.Array], keys: jax.Array) -> tuple[TrainState, Any]:
    """`run_epoch` for T trials at once: one program over a leading trial axis.

    Args:
      states: a `TrainState` whose leaves have a leading axis T (donated).
      images: uint8 ``[N, H, W, C]``, shared.
      labels: int32 ``[T, N]``, each trial's oracle labels.
      pools: int32 ``[T, N]``, each trial's indices then padding.
      num_valid: int32 scalar, the real entries of every pool (equal sizes).
      num_steps: ``ceil(num_valid / B)``.
      schedule: shared, as in `run_epoch`.
      keys: ``[T]`` PRNG keys, one per trial.

    Returns:
      ``(states, sums)``, each metric sum ``[T]``.
    """
    fns = self._trial_functions()
    if self.compiled_epochs:
      return fns['epoch'](states, images, labels, pools, num_valid, schedule, keys)
    orders, totals, first_steps = fns['start'](states, pools, num_valid, keys)
    for _ in range(num_steps):
      states, totals = fns['step'](states, totals, images, labels, orders, num_valid,
                                   first_steps, schedule, keys)
    return states, totals

  # -- inference ----------------------------------------------------------------

  def predict(self, variables, images: jax.Array, indices: np.ndarray,
              fn: Callable[[dict[str, jax.Array]], Any], batch_size: int) -> Any:
    """Runs the model in eval mode over ``indices`` and maps its outputs with ``fn``.

    Args:
      variables: ``{'params', 'batch_stats'}``.
      images: uint8 device array ``[N, H, W, C]``.
      indices: int ``[n]`` rows of ``images``.
      fn: a module-level function of the output dict (e.g. returning the
        logits or a score); one compilation per distinct ``fn``.
      batch_size: fixed batch size.

    Returns:
      NumPy pytree with leading axis ``n``.
    """
    if fn not in self._predict:
      def apply(variables, images, idx, fn=fn):
        self.trace_counts['predict'] += 1
        x = augment.normalize(images[idx], self.mean, self.std)
        return fn(self.model.apply(variables, x, train=False))
      self._predict[fn] = jax.jit(apply)
    return inference.map_batches(self._predict[fn], (variables, images), indices, batch_size,
                                 self.batch_sharding)


def fit(trainer: Trainer, state: TrainState, images: jax.Array, labels: jax.Array,
        indices: np.ndarray, *, epochs: int, key: jax.Array,
        description: str = 'train') -> tuple[TrainState, dict[str, float]]:
  """Trains ``state`` for ``epochs`` over ``indices`` (a labeled pool, a query).

  The indices go to the device once; each epoch is one call of the compiled
  `Trainer.train_epoch` (shuffle, batches, augmentation, updates), and the
  host reads back only the epoch's mean metrics, to check them for NaN and to
  show progress. There is no host round-trip inside an epoch.

  Args:
    trainer: the compiled steps.
    state: the initial state (donated: do not reuse it).
    images: uint8 device array ``[N, H, W, C]``.
    labels: int32 device array ``[N]`` (oracle labels; -1 where unknown,
      never read for unlabeled indices by a supervised loss).
    indices: int ``[n]``, ``1 <= n <= N``: the examples to train on.
    epochs: number of passes.
    key: PRNG key for the batch order, augmentation and dropout.
    description: label of the progress display.

  Returns:
    The trained state and the last epoch's mean metrics.

  Raises:
    JalError: no indices, or a loss became NaN or infinite.
  """
  cfg = trainer.train_config
  pool, num_valid = padded_pool(indices, images.shape[0], trainer.replicated, description)
  num_steps = -(-int(np.size(indices)) // cfg.batch_size)

  def epoch_fn(state, schedule):
    return trainer.run_epoch(state, images, labels, pool, num_valid, num_steps, schedule, key)

  return run_epochs(epoch_fn, state, epochs=epochs, num_steps=num_steps,
                    schedule_fn=lambda epoch: epoch_schedule(cfg, epoch, epochs),
                    sharding=trainer.replicated, description=description)


def fit_trials(trainer: Trainer, states: Sequence[TrainState], images: jax.Array,
               labels: Sequence[jax.Array], indices: Sequence[np.ndarray], *, epochs: int,
               keys: Sequence[jax.Array],
               description: str = 'train') -> tuple[list[TrainState], list[dict[str, float]]]:
  """`fit` for T trials (seeds) at once, vmapped over the trials in one program.

  Trial ``t`` trains ``states[t]`` on ``indices[t]`` with ``labels[t]`` and
  ``keys[t]``, as `fit` would (the same batches, augmentation and updates;
  the numbers agree up to floating-point reassociation). The pools must have
  the same size, as the trials of a comparison do.

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
  padded = [padded_pool(i, images.shape[0], trainer.replicated, description) for i in indices]
  pools = jnp.stack([p for p, _ in padded])
  num_valid = padded[0][1]
  num_steps = -(-sizes[0] // cfg.batch_size)
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
  labels, keys = jnp.stack(list(labels)), jnp.stack(list(keys))

  def epoch_fn(state, schedule):
    return trainer.run_trial_epochs(state, images, labels, pools, num_valid, num_steps,
                                    schedule, keys)

  stacked, metrics = run_epochs(epoch_fn, stacked, epochs=epochs, num_steps=num_steps,
                                schedule_fn=lambda epoch: epoch_schedule(cfg, epoch, epochs),
                                sharding=trainer.replicated, description=description)
  trials = range(len(states))
  return ([jax.tree.map(lambda x, t=t: x[t], stacked) for t in trials],
          [{k: float(np.asarray(v)[t]) for k, v in metrics.items()} for t in trials])


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


def epoch_schedule(cfg: ml_collections.ConfigDict, epoch: int, epochs: int) -> dict[str, np.float32]:
  """Epoch ``epoch``'s ``learning_rate`` (``cfg``'s schedule) and ``progress`` (``epoch / epochs``)."""
  return {'learning_rate': np.float32(optim.learning_rate(cfg, epoch)),
          'progress': np.float32(epoch / epochs)}


def run_epochs(epoch_fn: Callable[[Any, Any], tuple[Any, Any]], state: Any, *, epochs: int,
               num_steps: int, schedule_fn: Callable[[int], dict[str, Any]],
               sharding: jax.sharding.Sharding, description: str) -> tuple[Any, dict[str, float]]:
  """The host loop over epochs shared by every fit: schedule, NaN check, progress.

  Args:
    epoch_fn: ``(state, schedule) -> (state, metric sums)``, one epoch on the
      device (``schedule`` a dict of device scalars).
    state: the initial state.
    epochs: number of epochs.
    num_steps: steps per epoch (the sums are divided by it).
    schedule_fn: epoch number -> dict of NumPy scalars.
    sharding: where the schedule is placed.
    description: label of the progress display and of errors.

  Returns:
    The final state and the last epoch's mean metrics.

  Raises:
    JalError: a metric became NaN or infinite. The run stops there; rounds
      already finished are in the work directory.
  """
  metrics = {}
  progress = Progress(description, total=epochs)
  start = time.perf_counter()
  for epoch in range(epochs):
    state, sums = epoch_fn(state, jax.device_put(schedule_fn(epoch), sharding))
    # Scalars, or one value per trial (`fit_trials`).
    metrics = {k: _scalar_or_array(np.asarray(v, np.float64) / num_steps)
               for k, v in jax.device_get(sums).items()}
    bad = sorted(k for k, v in metrics.items() if not np.isfinite(v).all())
    if bad:
      raise JalError(f"{description}: {', '.join(bad)} became non-finite in epoch {epoch + 1} "
                     f'({metrics}); lower the learning rate (finished rounds are kept in the '
                     'work directory)')
    progress.update(epoch + 1, f"loss {np.mean(metrics.get('loss', np.nan)):.3f}",
                    time.perf_counter() - start)
  progress.close()
  return state, metrics


def _scalar_or_array(value: np.ndarray) -> float | np.ndarray:
  return float(value) if value.ndim == 0 else value
