"""MAL: Minimax Active Learning (Ebrahimi et al. 2020).

Each round has the paper's three algorithms:

- Algorithm 1 (training, `Strategy.fit`): an encoder F (the task model's
  backbone), a cosine classifier C on its features (`jal.models.CosineClassifier`,
  Eq. 1) and a discriminator D (`jal.models.MLPDiscriminator`) are trained
  from scratch for ``train.epochs`` (its own) over the labeled pool with Adam.
  Each step, in one compiled call (`jal.train.JointTrainer`), takes a
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
  `jal.strategies.vaal`), and combined by
  `jal.selection.both_conditions` (``selection='both'``); the ablations of
  Fig. 5 use D alone (``'discriminator'``) or the entropy alone
  (``'entropy'``).

Segmentation (Sec. 3.2): C is the same prototypes as 1x1 convolution
filters on F's ℓ2-normalised ``d x h x w`` tensor, upsampled to the image
(`jal.models.CosineClassifier` with ``per_pixel``); the cross-entropy is
over non-void pixels, the entropy of Eq. 2 and of the query the pixel
average; D is a small CNN (`jal.models.ConvDiscriminator`) on the
ℓ2-normalised tensor (per pixel) instead of the MLP on the pooled vector.

D reads F's pooled features ℓ2-normalised (Eq. 3 is garbled in the text; it
shows the normalised features, and the ``1 / T`` next to them only rescales
D's first layer). The diagnostics of the game (cross-entropy, entropy, D's
loss, accuracy and mean output on each pool, last epoch) are in
``train_metrics`` under ``mal_``; the query adds D's mean on the labeled pool
and on the candidates, D's accuracy at 0.5 and the candidates' mean entropy
(``query_metrics``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from jal import rng, selection, sharding
from jal.acquisition import uncertainty
from jal.data import augment
from jal.errors import JalError
from jal.models import (ConvDiscriminator, CosineClassifier, MLPDiscriminator, MultiHeadNet,
                        SpatialFeatures)
from jal.models.layers import l2_normalize
from jal.objectives import adversarial
from jal.objectives.classification import masked_accuracy, task_cross_entropy
from jal.strategies import base
from jal.strategies._discriminator import discriminator_step
from jal.train import JointTrainer, TrainState, apply_gradients, epoch_schedule, fit, init_state
from jal.train import inference, optim
from jal.train.config import optimizer_config, train_config

SELECTIONS = ('both', 'discriminator', 'entropy')


def default_config() -> ml_collections.ConfigDict:
  """MAL's settings; where the paper gives none, MME's (Saito et al. 2019) and VAAL's.

  Keys:
    temperature: T of the cosine classifier (MME's 0.05).
    classifier_hidden: units of C's hidden layer (256: App. B's parameter
      count); none for segmentation (Sec. 3.2).
    entropy_weight: lambda of the gradient reversal (MME's 0.1).
    discriminator_width: units of D's two hidden layers (512).
    conv_discriminator_width: channels of the first convolution of D for
      segmentation (`jal.models.ConvDiscriminator`; not given: 64).
    train: how F and C learn in Algorithm 1 (Adam 5e-4, 100 epochs, batch 128).
    discriminator_train: D's optimiser (Adam 5e-4), over Algorithm 1's epochs.
    selection: ``'both'`` (Algorithm 2), ``'discriminator'`` or ``'entropy'``
      (the ablations of Fig. 5).
    query_batch_statistics: F's batch norm on each scoring batch's own
      statistics at the query (see `jal.strategies.vaal`).
  """
  return ml_collections.ConfigDict(dict(
      temperature=0.05, classifier_hidden=256, entropy_weight=0.1, discriminator_width=512,
      conv_discriminator_width=64,
      train=train_config(optimizer='adam', learning_rate=5e-4, weight_decay=0.0, momentum=0.0,
                         epochs=100, batch_size=128),
      discriminator_train=optimizer_config('adam', 5e-4), selection='both',
      query_batch_statistics=True))


class MALState(struct.PyTreeNode):
  """F and C (one network: the task model's architecture) and D."""
  network: TrainState
  discriminator: TrainState


class Strategy(base.Strategy):
  """MAL; see the module docstring."""

  plain_fit = False

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    self.check_choice('selection', SELECTIONS)
    self.segmentation = self.task.kind == 'segmentation'
    # D reads what `_latent` returns: the pooled vector, or the d x h x w tensor.
    self.discriminator = (ConvDiscriminator(cfg.conv_discriminator_width) if self.segmentation
                          else MLPDiscriminator(cfg.discriminator_width))
    self.network_tx = optim.make_optimizer(cfg.train)
    self.discriminator_tx = optim.make_optimizer(cfg.discriminator_train)
    self._init = jax.jit(self._init_impl, out_shardings=sharding.replicated(self.mesh))
    self.joint = JointTrainer(self._step, batch_size=cfg.train.batch_size, mesh=self.mesh,
                              compiled_epochs=self.trainer.compiled_epochs)
    self._scores = jax.jit(self._scores_impl)

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    if cfg.temperature <= 0 or cfg.entropy_weight < 0:
      raise JalError(f'mal: config.strategy.mal.temperature={cfg.temperature} must be positive '
                     f'and entropy_weight={cfg.entropy_weight} non-negative')
    segmentation = self.task.kind == 'segmentation'
    # Sec. 3.2 puts the prototypes on F's tensor itself: no hidden layer there.
    classifier = CosineClassifier(self.task.num_classes, cfg.temperature,
                                  hidden=None if segmentation else cfg.classifier_hidden,
                                  per_pixel=segmentation)
    heads = {'classifier': classifier}
    if segmentation:
      heads['spatial'] = SpatialFeatures()
    return base.TaskSpec(MultiHeadNet(self.backbone(), heads), self.task.loss)

  def _latent(self, outputs):
    """What D reads: F's ℓ2-normalised features, pooled ``[B, D]`` or per pixel ``[B, h, w, d]``."""
    return l2_normalize(outputs['spatial'] if self.segmentation else outputs['features'])

  @staticmethod
  def _entropy(logits):
    """Eq. 2's mean entropy of C on a batch, over its pixels for segmentation."""
    return adversarial.minimax_entropy(logits.reshape(-1, logits.shape[-1]))

  # -- Algorithm 1: one iteration ---------------------------------------------------

  def _step(self, state, images, labels, idx_l, mask_l, idx_u, schedule, key):
    cfg = self.settings
    trainer = self.trainer
    key_l, key_u = jax.random.split(key)
    (x_l, y_l), x_u = (trainer.prepare_labeled(key_l, images, labels, idx_l),
                       trainer.prepare(key_u, images, idx_u))
    apply = trainer.model.apply
    lr = schedule['learning_rate']

    def cross_entropy(params):  # Eq. 1 on the labeled batch
      outputs, updates = apply({'params': params, 'batch_stats': state.network.batch_stats}, x_l,
                               train=True, mutable=['batch_stats'])
      logits = outputs['classifier']
      loss = task_cross_entropy(logits, y_l, mask_l)
      accuracy = masked_accuracy(logits, y_l, mask_l)
      return loss, (updates['batch_stats'], self._latent(outputs), accuracy)

    (ce, (stats, features_l, accuracy)), grads = jax.value_and_grad(
        cross_entropy, has_aux=True)(state.network.params)
    network = apply_gradients(self.network_tx, state.network, grads, stats, lr)

    def negated_entropy(params):  # Eq. 2 on the unlabeled batch, through the reversal layer
      outputs, updates = apply(
          {'params': params, 'batch_stats': network.batch_stats}, x_u, train=True,
          head_args={'classifier': {'reverse_gradient': cfg.entropy_weight}},
          mutable=['batch_stats'])
      entropy = self._entropy(outputs['classifier'])
      return -entropy, (updates['batch_stats'], self._latent(outputs), entropy)

    (_, (stats, features_u, entropy)), grads = jax.value_and_grad(
        negated_entropy, has_aux=True)(network.params)
    network = apply_gradients(self.network_tx, network, grads, stats, lr)

    # Eq. 3: D on F's normalised features of both batches; F gets no gradient.
    discriminator, d_metrics = discriminator_step(
        self.discriminator.apply, self.discriminator_tx, state.discriminator,
        (features_l,), (features_u,), mask_l, jnp.ones_like(mask_l),
        schedule['discriminator_learning_rate'])
    metrics = {'loss': ce, 'accuracy': accuracy, 'entropy': entropy, **d_metrics}
    return MALState(network, discriminator), metrics

  def _init_impl(self, key):
    network_key, d_key = jax.random.split(rng.init_key(key))
    model = self.trainer.model
    x = jnp.zeros((1, *self.data.spec.shape), jnp.float32)
    network = model.init({'params': network_key}, x, train=False)
    latent = jax.eval_shape(lambda: self._latent(model.apply(network, x, train=False)))
    d = self.discriminator.init({'params': d_key}, jnp.zeros(latent.shape, jnp.float32))
    return MALState(init_state(self.network_tx, network), init_state(self.discriminator_tx, d))

  def _schedule(self, epoch: int) -> dict[str, np.float32]:
    cfg = self.settings
    epochs = cfg.train.epochs
    return {**epoch_schedule(cfg.train, epoch, epochs),
            'discriminator_learning_rate': np.float32(
                optim.learning_rate(cfg.discriminator_train, epoch, epochs))}

  def fit(self, state, images, labels, pool, *, key, description) -> base.Fit:
    """Algorithm 1 (F, C and D from scratch), then Algorithm 3 (the task model from F).

    Returns:
      The task model's state; its last epoch's metrics and Algorithm 1's
      (prefixed ``mal_``); in ``aux`` the variables of F and C and of D,
      for the query.
    """
    game, game_metrics = self.joint.fit(
        self._init(jax.random.fold_in(key, 1)), images, labels, pool.labeled, pool.unlabeled,
        epochs=self.settings.train.epochs, schedule_fn=self._schedule,
        key=jax.random.fold_in(key, 2), description=f'{description}: MAL minimax game')
    networks = {'network': {'params': game.network.params,
                            'batch_stats': game.network.batch_stats},
                'discriminator': {'params': game.discriminator.params}}
    # Algorithm 3: the task model starts from F (a fresh classifier).
    variables = jax.device_get(state.variables)
    variables['params']['backbone'] = networks['network']['params']['backbone']
    variables['batch_stats']['backbone'] = networks['network']['batch_stats']['backbone']
    state, metrics = fit(self.trainer, self.trainer.from_variables(variables), images, labels,
                         pool.labeled, epochs=self.config.train.epochs, key=key,
                         description=f'{description} from F')
    return base.Fit(state, {**metrics, **{f'mal_{k}': v for k, v in game_metrics.items()}},
                    aux=networks)

  # -- Algorithm 2 ----------------------------------------------------------------

  def _scores_impl(self, networks, images, idx):
    """D's logit and C's entropy on ``images[idx]`` (F's batch norm: see the module docstring)."""
    model, spec = self.trainer.model, self.data.spec
    x = augment.normalize(images[idx], spec.mean, spec.std)
    if self.settings.query_batch_statistics:
      outputs, _ = model.apply(networks['network'], x, train=True, mutable=['batch_stats'])
    else:
      outputs = model.apply(networks['network'], x, train=False)
    return (self.discriminator.apply(networks['discriminator'], self._latent(outputs)),
            self.task.per_image(uncertainty.entropy(outputs['classifier'])))

  def scores(self, ctx: base.RoundContext, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(D logits, C entropies)``, float32 ``[n]`` each, on ``images[indices]``."""
    if ctx.fitted is None:
      raise JalError("mal: query without this round's fit; F, C and D are trained with the "
                     'task model')
    return inference.map_batches(self._scores, (ctx.fitted, ctx.images), indices,
                                 self.config.eval_batch_size, self.trainer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    logits, entropy = self.scores(ctx, ctx.candidates)
    labeled, _ = self.scores(ctx, ctx.pool.labeled)
    ctx.metrics.update(adversarial.pool_diagnostics(labeled, logits),
                       entropy_mean_candidates=float(np.mean(entropy)))
    rule = self.settings.selection
    if rule == 'discriminator':
      return selection.top_k(-logits, ctx.candidates, budget)
    if rule == 'entropy':
      return selection.top_k(entropy, ctx.candidates, budget)
    return selection.both_conditions(logits, entropy, ctx.candidates, budget)
