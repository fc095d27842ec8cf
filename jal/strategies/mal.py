"""MAL: Minimax Active Learning (Ebrahimi, Gan, Salahi & Darrell, paper 003).

Each round has the paper's three algorithms:

- Algorithm 1 (training, `fit_task_model`): an encoder F (the task model's
  backbone), a cosine classifier C on its features (`jal.models.CosineClassifier`,
  Eq. 1) and a discriminator D (`jal.models.MLPDiscriminator`) are trained
  from scratch for ``mal_train.epochs`` epochs over the labeled pool with Adam.
  Each step, in one compiled call (`jal.two_pool.TwoPoolTrainer`), takes a
  labeled and an unlabeled batch and makes three updates, in the order of
  Algorithm 1: (lines 4-6) F and C descend on the cross-entropy of the labeled
  batch; (lines 7-9) F and C descend on ``-H``, the negated mean entropy of
  C's prediction on the unlabeled batch (Eq. 2), with a gradient reversal
  layer of weight ``lambda`` (``entropy_weight``) between F and C, so C
  maximises H and F minimises it (MME's two optimiser steps per iteration,
  Saito et al. 2019); (lines 10-11) D descends on the binary cross-entropy of
  labeledness (1 = labeled, Eq. 3) of F's ℓ2-normalised features of both
  batches, which do not receive D's gradient. Algorithm 1 writes the F
  update as ``theta_F + alpha_1 grad L_Ent``; with ``L_Ent`` the negated
  entropy that is the text's "F minimises the entropy", and with lambda = 1
  it is exactly the reversal layer's update.
- Algorithm 3 (the task model, for evaluation): the task model (F's
  architecture with a fresh cosine classifier) starts from the trained F
  (backbone parameters and batch statistics) and is trained on the labeled
  pool with ``config.train``.
- Algorithm 2 (`query`): every candidate is scored by D (low: surely
  unlabeled) and by the entropy of C (high: far from every prototype), both
  with the Algorithm 1 networks, F's batch norm on each scoring batch's own
  statistics as in training (``query_batch_statistics``, default True; see
  `jal.strategies._vaal`; on CIFAR-10 runlocal with classes 5-9 kept out of
  the labeled pool, D's accuracy at the query was 0.69 with it and 0.54
  with running averages, and the query took 324 against 326 of 500 from the
  unseen classes), and combined by
  `jal.acquisition.mal.both_conditions` (``mal_selection='both'``); the
  ablations of Fig. 5 use D alone (``'discriminator'``) or the entropy alone
  (``'entropy'``).

D reads F's pooled features ℓ2-normalised (Eq. 3 is garbled in the text; it
shows the normalised features, and the ``1 / T`` next to them only rescales
D's first layer). The diagnostics of the game (cross-entropy, entropy, D's
loss, accuracy and mean output on each pool, last epoch) are in
``train_metrics`` under ``mal_``; the query adds D's mean on the labeled pool
and on the candidates, D's accuracy at 0.5 and the candidates' mean entropy
(``query_metrics``).

Config (``config.strategy``): ``temperature`` (T), ``classifier_hidden``,
``entropy_weight`` (lambda), ``mal_discriminator_width``, ``mal_train``
(optimiser, epochs, batch size of Algorithm 1 for F and C),
``mal_discriminator_train`` (D's optimiser), ``mal_selection``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jal import adversarial, augment, inference, optim, rng, selection, sharding, training
from jal import two_pool
from jal.acquisition import mal as mal_selection
from jal.acquisition import uncertainty
from jal.errors import JalError
from jal.models import CosineClassifier, MLPDiscriminator
from jal.models.mal import l2_normalize
from jal.strategies import base

SELECTIONS = ('both', 'discriminator', 'entropy')


class MALState(struct.PyTreeNode):
  """F and C (one network: the task model's architecture) and D."""
  network: training.TrainState
  discriminator: training.TrainState


class Strategy(base.Strategy):
  """MAL; see the module docstring."""

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if cfg.mal_selection not in SELECTIONS:
      raise JalError(f"mal: config.strategy.mal_selection='{cfg.mal_selection}' is unknown; use "
                     f"one of {', '.join(SELECTIONS)}")
    if cfg.temperature <= 0 or cfg.entropy_weight < 0:
      raise JalError(f'mal: config.strategy.temperature={cfg.temperature} must be positive and '
                     f'entropy_weight={cfg.entropy_weight} non-negative')
    self.discriminator = MLPDiscriminator(cfg.mal_discriminator_width)
    self.network_tx = optim.make_optimizer(cfg.mal_train)
    self.discriminator_tx = optim.make_optimizer(cfg.mal_discriminator_train)
    self._trainer = None
    self._fitted = None

  def task_heads(self, num_classes: int) -> dict:
    cfg = self.strategy_config
    return {'classifier': CosineClassifier(num_classes, cfg.temperature,
                                           hidden=cfg.classifier_hidden)}

  # -- Algorithm 1: one iteration ---------------------------------------------------

  def _step(self, trainer, state, images, labels, idx_l, mask_l, idx_u, schedule, key):
    cfg = self.strategy_config
    key_l, key_u = jax.random.split(key)
    x_l, x_u = trainer.prepare(key_l, images, idx_l), trainer.prepare(key_u, images, idx_u)
    y_l = labels[idx_l]
    apply = trainer.model.apply
    lr = schedule['learning_rate']

    def cross_entropy(params):  # Eq. 1 on the labeled batch
      outputs, updates = apply({'params': params, 'batch_stats': state.network.batch_stats}, x_l,
                               train=True, mutable=['batch_stats'])
      logits = outputs['classifier']
      loss = training.masked_mean(
          optax.softmax_cross_entropy_with_integer_labels(logits, y_l), mask_l)
      accuracy = training.masked_mean((jnp.argmax(logits, -1) == y_l).astype(jnp.float32),
                                      mask_l)
      return loss, (updates['batch_stats'], outputs['features'], accuracy)

    (ce, (stats, features_l, accuracy)), grads = jax.value_and_grad(
        cross_entropy, has_aux=True)(state.network.params)
    network = training.apply_gradients(self.network_tx, state.network, grads, stats, lr)

    def negated_entropy(params):  # Eq. 2 on the unlabeled batch, through the reversal layer
      outputs, updates = apply(
          {'params': params, 'batch_stats': network.batch_stats}, x_u, train=True,
          head_args={'classifier': {'reverse_gradient': cfg.entropy_weight}},
          mutable=['batch_stats'])
      entropy = adversarial.minimax_entropy(outputs['classifier'])
      return -entropy, (updates['batch_stats'], outputs['features'], entropy)

    (_, (stats, features_u, entropy)), grads = jax.value_and_grad(
        negated_entropy, has_aux=True)(network.params)
    network = training.apply_gradients(self.network_tx, network, grads, stats, lr)

    # Eq. 3: D on F's normalised features of both batches; F gets no gradient.
    discriminator, d_metrics = two_pool.discriminator_step(
        self.discriminator.apply, self.discriminator_tx, state.discriminator,
        (l2_normalize(features_l.astype(jnp.float32)),),
        (l2_normalize(features_u.astype(jnp.float32)),), mask_l, jnp.ones_like(mask_l),
        schedule['discriminator_learning_rate'])
    metrics = {'loss': ce, 'accuracy': accuracy, 'entropy': entropy, **d_metrics}
    return MALState(network, discriminator), metrics

  def _init_impl(self, trainer, key):
    network_key, d_key = jax.random.split(rng.init_key(key))
    x = jnp.zeros((1, *self.dataset.image_shape), jnp.float32)
    network = trainer.model.init({'params': network_key}, x, train=False)
    width = jax.eval_shape(lambda: trainer.model.apply(network, x, train=False))['features']
    d = self.discriminator.init({'params': d_key}, jnp.zeros(width.shape, jnp.float32))
    return MALState(training.init_state(self.network_tx, network),
                    training.init_state(self.discriminator_tx, d))

  def _bind(self, trainer: training.Trainer) -> None:
    """Compiles Algorithm 1's step, its initialisation and the query's scores."""
    if self._trainer is trainer:
      return
    self._trainer = trainer
    self._init = jax.jit(functools.partial(self._init_impl, trainer),
                         out_shardings=sharding.replicated(self.mesh))
    self._two_pool = two_pool.TwoPoolTrainer(
        functools.partial(self._step, trainer), batch_size=self.strategy_config.mal_train.batch_size,
        mesh=self.mesh, compiled_epochs=trainer.compiled_epochs)
    self._scores = jax.jit(functools.partial(self._scores_impl, trainer))

  def _schedule(self, epoch: int) -> dict[str, np.float32]:
    cfg = self.strategy_config
    epochs = cfg.mal_train.epochs
    return {**training.epoch_schedule(cfg.mal_train, epoch, epochs),
            'discriminator_learning_rate': np.float32(
                optim.learning_rate(cfg.mal_discriminator_train, epoch, epochs))}

  def fit_task_model(self, trainer, state, images, labels, pool, *, epochs, key, description):
    self._bind(trainer)
    # Algorithm 1: F, C and D from scratch.
    mal_state = self._init(jax.random.fold_in(key, 1))
    mal_state, mal_metrics = self._two_pool.fit(
        mal_state, images, labels, pool.labeled, pool.unlabeled,
        epochs=self.strategy_config.mal_train.epochs, schedule_fn=self._schedule,
        key=jax.random.fold_in(key, 2), description=f'{description}: MAL minimax game')
    self._fitted = {'network': {'params': mal_state.network.params,
                                'batch_stats': mal_state.network.batch_stats},
                    'discriminator': {'params': mal_state.discriminator.params}}
    # Algorithm 3: the task model starts from F (a fresh classifier).
    variables = jax.device_get(state.variables)
    variables['params']['backbone'] = self._fitted['network']['params']['backbone']
    variables['batch_stats']['backbone'] = self._fitted['network']['batch_stats']['backbone']
    state = trainer.from_variables(variables)
    state, metrics = training.fit(trainer, state, images, labels, pool.labeled, epochs=epochs,
                                  key=key, description=f'{description} from F')
    return state, {**metrics, **{f'mal_{k}': v for k, v in mal_metrics.items()}}

  # -- Algorithm 2 ----------------------------------------------------------------

  def _scores_impl(self, trainer, fitted, images, idx):
    """D's logit and C's entropy on ``images[idx]`` (see `query` for F's batch norm)."""
    x = augment.normalize(images[idx], self.dataset.mean, self.dataset.std)
    if self.strategy_config.query_batch_statistics:
      outputs, _ = trainer.model.apply(fitted['network'], x, train=True, mutable=['batch_stats'])
    else:
      outputs = trainer.model.apply(fitted['network'], x, train=False)
    features = l2_normalize(outputs['features'].astype(jnp.float32))
    return (self.discriminator.apply(fitted['discriminator'], features),
            uncertainty.entropy(outputs['classifier']))

  def scores(self, ctx: base.RoundContext, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(D logits, C entropies)``, float32 ``[n]`` each, on ``images[indices]``."""
    if self._fitted is None:
      raise JalError('mal: query before fit_task_model; F, C and D are trained with the task '
                     'model')
    return inference.map_batches(self._scores, (self._fitted, ctx.images), indices,
                                 self.config.eval_batch_size, self._trainer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    logits, entropy = self.scores(ctx, ctx.candidates)
    labeled, _ = self.scores(ctx, ctx.pool.labeled)
    ctx.metrics.update(adversarial.pool_diagnostics(labeled, logits),
                       entropy_mean_candidates=float(np.mean(entropy)))
    rule = self.strategy_config.mal_selection
    if rule == 'discriminator':
      return selection.top_k(-logits, ctx.candidates, budget)
    if rule == 'entropy':
      return selection.top_k(entropy, ctx.candidates, budget)
    return mal_selection.both_conditions(logits, entropy, ctx.candidates, budget)

