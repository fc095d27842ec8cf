"""A network, its optimiser and loss, compiled once: `Trainer`, and `fit` on a set of indices.

A `Trainer` binds a model, a loss and a train config once per experiment;
its train step and predict functions are compiled once and reused in every
round (the pool grows, the shapes do not). Each step gathers a batch of
uint8 images by index from the device-resident split, augments and
normalises it, and updates; epochs run through `jal.train.epochs.EpochLoop`.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jal import rng, sharding
from jal.data import ImageSpec, augment
from jal.errors import JalError
from jal.objectives import Batch, LossFn
from jal.train import epochs as epochs_lib
from jal.train import inference, optim
from jal.train.state import TrainState, init_state, with_learning_rate


class Trainer:
  """A model, its optimiser and loss, and their compiled steps.

  Args:
    model: a flax module called as ``model.apply(variables, x, train=...)``
      returning a dict of outputs.
    loss_fn: a `jal.objectives.LossFn`.
    train_config: ``optimizer``, ``learning_rate``, schedule, ``epochs``,
      ``batch_size``, ``crop_pad``, ``flip``, ``weight_decay``,
      ``compiled_epochs`` (`jal.train.config.train_config`).
    spec: the images' shape, normalisation and whether flips keep labels.
    mesh: the ``('data',)`` device mesh.
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

  Raises:
    JalError: a batch size below 1 or not a multiple of the devices, negative
      epochs, fewer than one view, or a bad optimiser setting.
  """

  def __init__(self, model: nn.Module, loss_fn: LossFn, train_config: ml_collections.ConfigDict,
               spec: ImageSpec, mesh: jax.sharding.Mesh, *,
               trainable: Callable[[str], bool] | None = None,
               freeze_after: Mapping[str, float] | None = None, views: int = 1):
    if train_config.batch_size < 1 or train_config.epochs < 0:
      raise JalError(f'batch_size={train_config.batch_size} and epochs={train_config.epochs} '
                     'must be at least 1 and 0')
    if views < 1:
      raise JalError(f'views={views} must be at least 1')
    self.model = model
    self.loss_fn = loss_fn
    self.train_config = train_config
    self.spec = spec
    self.mesh = mesh
    self.trainable = trainable
    self.freeze_after = dict(freeze_after or {})
    self.views = views
    self.tx = optim.make_optimizer(train_config)
    self.replicated = sharding.replicated(mesh)
    self.batch_sharding = sharding.batch_sharded(mesh)
    self.loop = epochs_lib.EpochLoop(
        self._step, order_keys=self._order_keys, step_key=self._step_key,
        batch_size=train_config.batch_size, mesh=mesh,
        compiled=train_config.get('compiled_epochs'), trial_data_axes=(None, 0))
    self._init = jax.jit(self._init_impl, out_shardings=self.replicated)
    self._from_variables = jax.jit(lambda variables: init_state(self.tx, variables),
                                   out_shardings=self.replicated)
    self._predict = {}
    self._predict_traces = 0

  @property
  def compiled_epochs(self) -> bool:
    """Whether an epoch is one compiled loop (True) or a host loop of compiled steps."""
    return self.loop.compiled

  @property
  def trace_counts(self) -> dict[str, int]:
    """How often the train epoch, the train step and predict were traced."""
    return {'train_epoch': self.loop.trace_counts['epoch'],
            'train_step': self.loop.trace_counts['step'], 'predict': self._predict_traces}

  # -- initialisation -----------------------------------------------------------

  def _init_impl(self, key):
    x = jnp.zeros((1, *self.spec.shape), jnp.float32)
    return init_state(self.tx, self.model.init({'params': rng.init_key(key)}, x, train=False))

  def init(self, key: jax.Array) -> TrainState:
    """A fresh state: parameters drawn with ``key``, optimiser state zero."""
    return self._init(key)

  def from_variables(self, variables: dict[str, Any]) -> TrainState:
    """A state holding a copy of ``variables`` and a fresh optimiser state.

    Used to fine-tune a copy of a network (PAL's ``g'``) and to warm-start the
    task model from the previous round. (The outputs of a jitted function
    are fresh buffers: a copy.)
    """
    return self._from_variables(jax.device_put(variables, self.replicated))

  # -- the compiled train step ------------------------------------------------------

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
                        flip=self.spec.flip and self.train_config.get('flip', True))
    return augment.normalize(x, self.spec.mean, self.spec.std)

  def prepare_labeled(self, key: jax.Array, images: jax.Array, labels: jax.Array,
                      idx: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The training input and its labels: `prepare`'s images and ``labels[idx]``.

    For masks (``labels`` uint8 ``[N, H, W]``) the image and its mask get the
    same crop and flip (`jal.data.augment.augment_with_masks`; padding and
    void are `jal.segmentation_metrics.IGNORE`), so pixels and labels stay
    aligned.

    Returns:
      float32 ``[B, H, W, C]`` and ``labels[idx]`` (augmented when masks).
    """
    if labels.ndim == 1:
      return self.prepare(key, images, idx), labels[idx]
    x, y = augment.augment_with_masks(
        key, images[idx], labels[idx], crop_pad=self.train_config.get('crop_pad', 0),
        flip=self.spec.flip and self.train_config.get('flip', True))
    return augment.normalize(x, self.spec.mean, self.spec.std), y

  def update(self, state: TrainState, batch: Batch, schedule: dict[str, jax.Array],
             key: jax.Array) -> tuple[TrainState, dict[str, jax.Array]]:
    """One optimiser step on the loss of a prepared batch (traced inside a compiled step).

    Args:
      state: the `TrainState`.
      batch: images from `prepare`, labels and mask.
      schedule: ``learning_rate`` and ``progress``, float32 scalars.
      key: the loss's PRNG key (dropout).

    Returns:
      The new state and the loss's metrics.
    """
    def loss(params):
      return self.loss_fn(self.model.apply, {'params': params, 'batch_stats': state.batch_stats},
                          batch, key, schedule['progress'])

    (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    opt_state = with_learning_rate(state.opt_state, schedule['learning_rate'])
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    updates = dict(updates)
    if self.trainable is not None:
      updates = {name: u if self.trainable(name) else jax.tree.map(jnp.zeros_like, u)
                 for name, u in updates.items()}
    for name, fraction in self.freeze_after.items():
      frozen = schedule['progress'] >= fraction
      updates[name] = jax.tree.map(lambda u: jnp.where(frozen, jnp.zeros_like(u), u),
                                   updates[name])
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats,
                           opt_state=opt_state)
    return new_state, metrics

  def _order_keys(self, state, key, schedule):
    del schedule
    # Folding in the step count draws a new order every epoch.
    return (jax.random.fold_in(jax.random.split(key)[0], state.step),)

  def _step_key(self, state, key, schedule, i):
    del state, schedule, i
    return jax.random.split(key)[1]

  def _step(self, state, data, batches, schedule, key):
    """One update on the batch ``images[idx]``; with ``views > 1`` each image is
    augmented ``views`` times independently."""
    images, labels = data
    ((idx, mask),) = batches
    aug_key, loss_key = jax.random.split(jax.random.fold_in(key, state.step))
    if self.views == 1:
      (x, y), m = self.prepare_labeled(aug_key, images, labels, idx), mask
    else:
      views = [self.prepare_labeled(k, images, labels, idx)
               for k in jax.random.split(aug_key, self.views)]
      x, y = (jnp.concatenate(parts) for parts in zip(*views))
      m = jnp.tile(mask, self.views)
    return self.update(state, Batch(images=x, labels=y, mask=m), schedule, loss_key)

  # -- inference ------------------------------------------------------------------

  def predict(self, variables, images: jax.Array, indices: np.ndarray,
              fn: Callable[[dict[str, jax.Array]], Any], batch_size: int,
              on_device: bool = False) -> Any:
    """Runs the model in eval mode over ``indices`` and maps its outputs with ``fn``.

    ``fn`` is compiled once per distinct function (compared with ``==``): a
    module-level function or a method of a long-lived object compiles once
    for the whole experiment; a lambda made anew each call compiles each time.

    Args:
      variables: ``{'params', 'batch_stats'}``.
      images: uint8 device array ``[N, H, W, C]``.
      indices: int ``[n]`` rows of ``images``.
      fn: a function of the output dict (e.g. returning the logits or a score).
      batch_size: fixed batch size (a multiple of the devices).
      on_device: keep the outputs on the device (`inference.map_batches`).

    Returns:
      NumPy pytree with leading axis ``n`` (``on_device``: device arrays,
      ``n`` rounded up to a multiple of ``batch_size``).
    """
    if fn not in self._predict:
      def apply(variables, images, idx, fn=fn):
        self._predict_traces += 1
        x = augment.normalize(images[idx], self.spec.mean, self.spec.std)
        return fn(self.model.apply(variables, x, train=False))
      self._predict[fn] = jax.jit(apply)
    return inference.map_batches(self._predict[fn], (variables, images), indices, batch_size,
                                 self.batch_sharding, on_device=on_device)


def epoch_schedule(cfg: ml_collections.ConfigDict, epoch: int,
                   epochs: int) -> dict[str, np.float32]:
  """Epoch ``epoch``'s ``learning_rate`` (``cfg``'s schedule) and ``progress``
  (``epoch / epochs``)."""
  return {'learning_rate': np.float32(optim.learning_rate(cfg, epoch)),
          'progress': np.float32(epoch / epochs)}


def fit(trainer: Trainer, state: TrainState, images: jax.Array, labels: jax.Array,
        indices: np.ndarray, *, epochs: int, key: jax.Array,
        description: str = 'train') -> tuple[TrainState, dict[str, float]]:
  """Trains ``state`` for ``epochs`` over ``indices`` (a labeled pool, a query).

  The indices go to the device once; each epoch runs on the device
  (shuffle, batches, augmentation, updates), and the host reads back only
  the epoch's metric sums, to check them for NaN and to show progress.

  Args:
    trainer: the compiled steps.
    state: the initial state (donated: do not reuse it).
    images: uint8 device array ``[N, H, W, C]``.
    labels: int32 device array ``[N]`` (oracle labels; -1 where unknown,
      never read for unlabeled indices by a supervised loss).
    indices: int ``[n]``, ``1 <= n <= N``: the examples to train on.
    epochs: number of passes.
    key: PRNG key for the batch order, augmentation and dropout.
    description: label of the progress bar and of errors.

  Returns:
    The trained state and the last epoch's metrics: exact means over its
    real examples.

  Raises:
    JalError: no indices, or a loss became NaN or infinite.
  """
  cfg = trainer.train_config
  pool = epochs_lib.padded_pool(indices, images.shape[0], trainer.replicated, description)
  num_steps = -(-int(np.size(indices)) // cfg.batch_size)
  epoch_fn = trainer.loop.epoch_function((images, labels), (pool,), key, num_steps)
  return epochs_lib.run_epochs(epoch_fn, state, epochs=epochs,
                               schedule_fn=lambda epoch: epoch_schedule(cfg, epoch, epochs),
                               sharding=trainer.replicated, description=description)
