"""Fitting a network on a set of pool indices with one compiled train step.

A `Trainer` binds a model, an optimiser and a loss once per experiment; its
train step and predict functions are compiled once and reused in every round
(the pool grows, the shapes do not). `fit` is the thin host loop over epochs.

Inside the train step the uint8 images are gathered by index from the
device-resident dataset, augmented and normalised, so the host only sends
``[batch]`` index arrays.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import struct

from jal import augment, inference, optim, sharding
from jal.errors import JalError
from jal.progress import Progress

# loss_fn(apply_fn, variables, images, labels, mask, key) ->
#   (loss, (new_model_state, metrics)); images float32 [B, H, W, C] normalised,
#   labels int32 [B], mask float32 [B] (0 marks padding), key for dropout etc.
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


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of ``values`` [B] over entries where ``mask`` [B] is 1."""
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def cross_entropy_loss(apply_fn, variables, images, labels, mask, key):
  """Standard supervised loss: softmax cross-entropy of the ``'classifier'`` head."""
  del key
  outputs, new_state = apply_fn(variables, images, train=True, mutable=['batch_stats'])
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

  def __post_init__(self):
    if self.train_config.batch_size < 1 or self.train_config.epochs < 0:
      raise JalError(f'batch_size={self.train_config.batch_size} and epochs='
                     f'{self.train_config.epochs} must be at least 1 and 0')
    self.tx = optim.make_optimizer(self.train_config)
    self.trace_counts = {'train_step': 0, 'predict': 0}
    self._replicated = sharding.replicated(self.mesh)
    self.batch_sharding = sharding.batch_sharded(self.mesh)
    sharding.check_batch_size(self.train_config.batch_size, self.mesh, 'batch_size')
    self._init = jax.jit(self._init_impl, out_shardings=self._replicated)
    self._init_optimizer = jax.jit(self.tx.init, out_shardings=self._replicated)
    self.train_step = jax.jit(self._train_step_impl, donate_argnums=(0,))
    self._predict = {}

  # -- initialisation ---------------------------------------------------------

  def _init_impl(self, key):
    x = jnp.zeros((1, *self.image_shape), jnp.float32)
    variables = self.model.init({'params': key}, x, train=False)
    params = variables['params']
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=variables.get('batch_stats', {}),
                      opt_state=self.tx.init(params))

  def init(self, key: jax.Array) -> TrainState:
    """A fresh state: parameters drawn with ``key``, optimiser state zero."""
    return self._init(key)

  def from_variables(self, variables: dict[str, Any]) -> TrainState:
    """A state holding a copy of ``variables`` and a fresh optimiser state.

    Used to fine-tune a copy of a network (PAL's ``g'``) and to warm-start the
    task model from the previous round.
    """
    variables = jax.device_put(variables, self._replicated)
    params = jax.tree.map(jnp.copy, variables['params'])
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=jax.tree.map(jnp.copy, variables.get('batch_stats', {})),
                      opt_state=self._init_optimizer(params))

  # -- the compiled train step --------------------------------------------------

  def _train_step_impl(self, state, images, labels, idx, mask, lr, key):
    self.trace_counts['train_step'] += 1
    aug_key, loss_key = jax.random.split(jax.random.fold_in(key, state.step))
    x = augment.augment(aug_key, images[idx], crop_pad=self.train_config.get('crop_pad', 0),
                        flip=self.flip and self.train_config.get('flip', True))
    x = augment.normalize(x, self.mean, self.std)
    y = labels[idx]

    def loss(params):
      return self.loss_fn(self.model.apply, {'params': params, 'batch_stats': state.batch_stats},
                          x, y, mask, loss_key)

    (_, (batch_stats, metrics)), grads = jax.value_and_grad(loss, has_aux=True)(state.params)
    opt_state = state.opt_state
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, 'learning_rate': lr})
    updates, opt_state = self.tx.update(grads, opt_state, state.params)
    if self.trainable is not None:
      updates = {name: u if self.trainable(name) else jax.tree.map(jnp.zeros_like, u)
                 for name, u in updates.items()}
    params = optax.apply_updates(state.params, updates)
    new_state = TrainState(step=state.step + 1, params=params, batch_stats=batch_stats,
                           opt_state=opt_state)
    return new_state, metrics

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


def epoch_batches(indices: np.ndarray, batch_size: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """One epoch's shuffled batches with the last one filled up and masked.

  The fill-up examples are drawn at random from ``indices`` (so batch norm sees
  real images) and get mask 0 (so they add nothing to the loss).

  Args:
    indices: int with shape ``[n]``, ``n >= 1``.
    batch_size: fixed batch size ``B``.
    rng: generator for the order and the fill-up.

  Returns:
    ``(idx, mask)`` with shapes ``[steps, B]`` (int32) and ``[steps, B]``
    (float32), ``steps = ceil(n / B)``.
  """
  n = indices.shape[0]
  steps = max(1, math.ceil(n / batch_size))
  order = rng.permutation(indices)
  fill = steps * batch_size - n
  if fill:
    order = np.concatenate([order, rng.choice(indices, fill, replace=fill > n)])
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(fill, np.float32)])
  return order.astype(np.int32).reshape(steps, batch_size), mask.reshape(steps, batch_size)


def fit(trainer: Trainer, state: TrainState, images: jax.Array, labels: jax.Array,
        indices: np.ndarray, *, epochs: int, rng: np.random.Generator, key: jax.Array,
        description: str = 'train') -> tuple[TrainState, dict[str, float]]:
  """Trains ``state`` for ``epochs`` over ``indices`` (a labeled pool, a query).

  Args:
    trainer: the compiled steps.
    state: the initial state (donated: do not reuse it).
    images: uint8 device array ``[N, H, W, C]``.
    labels: int32 device array ``[N]`` (oracle labels; -1 where unknown,
      never read for unlabeled indices by a supervised loss).
    indices: int ``[n]``: the examples to train on.
    epochs: number of passes.
    rng: host generator for batch order.
    key: PRNG key for augmentation and dropout.
    description: label of the progress display.

  Returns:
    The trained state and the last epoch's mean metrics.
  """
  cfg = trainer.train_config
  metrics = {}
  progress = Progress(description, total=epochs)
  start = time.perf_counter()
  for epoch in range(epochs):
    lr = jnp.float32(optim.learning_rate(cfg, epoch))
    idx, mask = epoch_batches(np.asarray(indices), cfg.batch_size, rng)
    epoch_metrics = []
    for step in range(idx.shape[0]):
      batch_idx = jax.device_put(idx[step], trainer.batch_sharding)
      batch_mask = jax.device_put(mask[step], trainer.batch_sharding)
      state, m = trainer.train_step(state, images, labels, batch_idx, batch_mask, lr, key)
      epoch_metrics.append(m)
    # One transfer per epoch: reduce on the device, then fetch.
    metrics = jax.device_get(jax.tree.map(lambda *xs: jnp.mean(jnp.stack(xs)), *epoch_metrics))
    metrics = {k: float(v) for k, v in metrics.items()}
    if not all(np.isfinite(v) for v in metrics.values()):
      raise JalError(f'{description}: a loss became {metrics} in epoch {epoch + 1}; lower the '
                     'learning rate (finished rounds are kept in the work directory)')
    progress.update(epoch + 1, f"loss {metrics.get('loss', float('nan')):.3f}",
                    time.perf_counter() - start)
  progress.close()
  return state, metrics
