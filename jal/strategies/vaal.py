"""VAAL and TA-VAAL: a VAE and a latent discriminator trained against each other.

VAAL (Sinha, Ebrahimi & Darrell, ICCV 2019) trains a β-VAE on the labeled and
the unlabeled pool and a discriminator D on its latent mean that tells the
pools apart (1 = labeled), while the VAE's encoder learns to fool D; the query
takes the unlabeled examples D is surest are unlabeled (the lowest D). TA-VAAL
(Kim et al., CVPR 2021) adds the task learner's ranker R (a loss
prediction module trained with the pairwise ranking loss, Eq. 1-2) and gives
both the VAE's decoder and D the normalised rank ``r = sigmoid(R(x))``
(Eqs. 3-7).

Training follows TA-VAAL's Algorithm 1, which interleaves everything: each
step of an epoch over the labeled pool updates, from one labeled and one
unlabeled batch and in one compiled step (`jal.train.JointTrainer`),

1. the task learner (and R, for the first ``ranker_epochs`` = 80% of the
   epochs; Algorithm 1, lines 7-10) on ``L_T + eta L_R``;
2. the VAE on ``L_trans + lambda L_adv`` (Eqs. 4-5): reconstruction and
   ``beta`` KL on both batches, and the adversarial term through D's frozen
   parameters;
3. D on ``L_D`` (Eq. 6), on the latent means of the VAE just updated.

``r`` comes from the task learner before its update, in eval mode for both
pools (so D cannot tell the pools apart by batch-norm mode); in the first
epoch ``r ~ U(0, 1)`` (Algorithm 1, line 5). VAAL is the same game without
``r`` and with a plain task model (its interleaving is that of VAAL's
reference ``solver.py``); each method trains only what it needs (TA-VAAL's
public code trains every method with the ranker, by an ``if method ==
'lloss' or 'TA-VAAL'`` that is always true).

The VAE reads the labeled batch with the task model's augmentation, and the
unlabeled batch with the same augmentation; labeled and unlabeled batches go
through the VAE separately, as in the reference code (each is normalised by
its own batch statistics).

Query (Eq. 7): the candidates (TA-VAAL: a random subset 10x the budget,
``config.candidate_subset``) with the lowest D logit, ``z`` the posterior mean
and R in eval mode. The VAE's batch norm uses each scoring batch's own
statistics (``query_batch_statistics``, default True), as VAAL's reference
code does (it never switches the VAE to eval mode): D learned on latents of
all-labeled and all-unlabeled batches, each normalised by its own statistics,
and running averages mix the two pools (the measurement behind the default
is in ``experiments/README.md``). The query also writes D's
mean output on the labeled pool and on the candidates, and D's accuracy at
0.5, to ``results.jsonl`` (``query_metrics``); the training metrics of the
last epoch (D's loss, accuracy and mean outputs, the VAE's terms) are in
``train_metrics``.

``task_aware`` chooses between the two; ``tavaal`` is the strategy name of
``task_aware=True`` (`ALIASES`).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import struct

from jal import rng, selection, sharding
from jal.data import augment
from jal.errors import JalError
from jal.models import VAE, LatentDiscriminator, LossPredictionHead
from jal.objectives import Batch, adversarial, ranking
from jal.strategies import base
from jal.strategies._discriminator import discriminator_step
from jal.train import JointTrainer, TrainState, apply_gradients, epoch_schedule, init_state
from jal.train import inference, optim
from jal.train.config import optimizer_config

ALIASES = {'tavaal': {'task_aware': True}}


def default_config() -> ml_collections.ConfigDict:
  """VAAL's reference settings (Sinha et al. 2019) and TA-VAAL's (Kim et al. 2021).

  Keys:
    task_aware: False for VAAL, True for TA-VAAL.
    vae: ``z_dim`` (32), ``width`` (128), ``dtype``: the reference code's β-VAE.
    vae_train, discriminator_train: their optimisers (Adam 5e-4), over the
      task model's epochs.
    discriminator: ``width`` (512) and ``num_hidden`` (2; TA-VAAL's paper
      reports a 5-layer MLP: 4).
    beta: weight of the per-example KL. The reference code sums the KL over
      the batch, i.e. beta = batch size here.
    adversary_weight: lambda of the VAE's adversarial term.
    query_batch_statistics: the query runs the VAE's batch norm on each
      scoring batch's own statistics, as D saw them in training (VAAL's
      reference never calls ``vae.eval()``).
    ranking_weight, ranker_epochs, loss_prediction_width: TA-VAAL's ranker:
      eta (1), the fraction of the epochs it is updated for (Algorithm 1:
      0.8) and its width (Learning Loss's 128).
  """
  return ml_collections.ConfigDict(dict(
      task_aware=False, vae=dict(z_dim=32, width=128, dtype='float32'),
      vae_train=optimizer_config('adam', 5e-4),
      discriminator=dict(width=512, num_hidden=2),
      discriminator_train=optimizer_config('adam', 5e-4),
      beta=1.0, adversary_weight=1.0, query_batch_statistics=True,
      ranking_weight=1.0, ranker_epochs=0.8, loss_prediction_width=128))


class AdversarialState(struct.PyTreeNode):
  """The three networks of one VAAL / TA-VAAL iteration."""
  task: TrainState
  vae: TrainState
  discriminator: TrainState


def _split(x: jax.Array, b: int) -> tuple[jax.Array, jax.Array]:
  return x[:b], x[b:]


class Strategy(base.Strategy):
  """VAAL (``task_aware=False``) and TA-VAAL (``task_aware=True``)."""

  plain_fit = False

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    if cfg.beta < 0 or cfg.adversary_weight < 0:
      raise JalError(f'{self.config.strategy.name}: config.strategy.vaal.beta={cfg.beta} and '
                     f'adversary_weight={cfg.adversary_weight} must be non-negative')
    self.conditioned = bool(cfg.task_aware)
    self.vae = VAE(z_dim=cfg.vae.z_dim, width=cfg.vae.width, image_shape=self.data.spec.shape,
                   dtype=cfg.vae.get('dtype', 'float32'))
    self.discriminator = LatentDiscriminator(width=cfg.discriminator.width,
                                             num_hidden=cfg.discriminator.num_hidden)
    self.vae_tx = optim.make_optimizer(cfg.vae_train)
    self.discriminator_tx = optim.make_optimizer(cfg.discriminator_train)
    self._init_networks = jax.jit(self._init_networks_impl,
                                  out_shardings=sharding.replicated(self.mesh))
    self.joint = JointTrainer(self._step, batch_size=self.config.train.batch_size,
                              mesh=self.mesh, compiled_epochs=self.trainer.compiled_epochs)
    self._logits = jax.jit(self._logits_impl)

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    if not cfg.task_aware:
      return super().task_spec()
    # TA-VAAL's task learner carries the ranker R (Learning Loss's loss
    # prediction module) trained with the pairwise ranking loss (Eq. 1),
    # L_total = L_T + eta L_R (Eq. 2). Algorithm 1 updates R only while
    # n <= 0.8 N and the task learner with the gradient of L_total
    # throughout: after that point R is frozen but its loss still reaches the
    # backbone. (TA-VAAL's public code instead keeps training R and detaches
    # its input after 60% of the epochs, as Learning Loss does; the paper
    # decides.)
    if not 0.0 <= cfg.ranker_epochs <= 1.0:
      raise JalError(f'tavaal: config.strategy.vaal.ranker_epochs={cfg.ranker_epochs} must be '
                     'a fraction of the epochs in [0, 1] (Algorithm 1: 0.8)')
    loss = functools.partial(ranking.loss_prediction_objective,
                             ranking_loss=ranking.pairwise_ranking_loss,
                             weight=cfg.ranking_weight, detach_after=float('inf'))
    return base.TaskSpec(
        self.task_model(loss_prediction=LossPredictionHead(cfg.loss_prediction_width)), loss,
        freeze_after={'heads_loss_prediction': cfg.ranker_epochs})

  # -- networks ---------------------------------------------------------------

  def _condition_spec(self, batch: int) -> jax.Array | None:
    return jnp.zeros((batch, 1), jnp.float32) if self.conditioned else None

  def _init_networks_impl(self, key):
    vae_key, d_key = jax.random.split(rng.init_key(key))
    x = jnp.zeros((1, *self.data.spec.shape), jnp.float32)
    vae = self.vae.init({'params': vae_key}, x, False, self._condition_spec(1))
    z = jnp.zeros((1, self.vae.z_dim), jnp.float32)
    discriminator = self.discriminator.init({'params': d_key}, z, self._condition_spec(1))
    return (init_state(self.vae_tx, vae), init_state(self.discriminator_tx, discriminator))

  def init_networks(self, key: jax.Array) -> tuple[TrainState, TrainState]:
    """Fresh VAE and D states (parameters from ``key``, optimiser states zero), compiled."""
    return self._init_networks(key)

  def rank(self, task_variables, x: jax.Array) -> jax.Array | None:
    """``r = sigmoid(R(x))`` ``[B, 1]`` of the task model in eval mode (None for VAAL)."""
    if not self.conditioned:
      return None
    outputs = self.trainer.model.apply(task_variables, x, train=False)
    return jax.nn.sigmoid(outputs['loss_prediction'].astype(jnp.float32))[:, None]

  def condition(self, task_variables, x: jax.Array, progress: jax.Array,
                key: jax.Array) -> jax.Array | None:
    """What conditions the VAE's decoder and D in a training step: ``[B, 1]``, no gradient
    (None for VAAL).

    TA-VAAL's Algorithm 1, lines 5-6: ``r ~ U(0, 1)`` in the first epoch
    (``progress == 0``), ``sigmoid(R(x))`` after; a conditional, so the first
    epoch runs no ranker pass it would discard.
    """
    if not self.conditioned:
      return None
    r = jax.lax.cond(progress == 0, lambda: jax.random.uniform(key, (x.shape[0], 1)),
                     lambda: self.rank(task_variables, x))
    return jax.lax.stop_gradient(r)

  def _encode(self, variables, x, train):
    """The VAE's posterior mean (and updated batch statistics when ``train``)."""
    if train:
      (mu, _), updates = self.vae.apply(variables, x, True, method=VAE.encode,
                                        mutable=['batch_stats'])
      return mu, updates['batch_stats']
    return self.vae.apply(variables, x, False, method=VAE.encode)[0], None

  # -- the compiled step (TA-VAAL Algorithm 1, one iteration) --------------------

  def _step(self, state, images, labels, idx_l, mask_l, idx_u, schedule, key):
    cfg = self.settings
    trainer = self.trainer
    keys = jax.random.split(key, 6)
    b = idx_l.shape[0]
    x_l, y_l = trainer.prepare_labeled(keys[0], images, labels, idx_l)
    x_u = trainer.prepare(keys[1], images, idx_u)
    mask_u = jnp.ones_like(mask_l)
    r = self.condition(state.task.variables, jnp.concatenate([x_l, x_u]),
                       schedule['progress'], keys[2])
    r_l, r_u = _split(r, b) if r is not None else (None, None)

    # 1. The task learner (and the ranker, until it is frozen).
    task, metrics = trainer.update(state.task, Batch(x_l, y_l, mask_l), schedule,
                                   keys[3])

    # 2. The VAE: L_trans + lambda L_adv (Eqs. 4-5), D's parameters held fixed.
    d_apply = self.discriminator.apply

    def vae_loss(params):
      variables = {'params': params, 'batch_stats': state.vae.batch_stats}
      (rec_l, mu_l, logvar_l), updates = self.vae.apply(
          variables, x_l, True, r_l, rngs={'sample': keys[4]}, mutable=['batch_stats'])
      (rec_u, mu_u, logvar_u), updates = self.vae.apply(
          {'params': params, **updates}, x_u, True, r_u, rngs={'sample': keys[5]},
          mutable=['batch_stats'])
      terms_l = adversarial.vae_loss_terms(x_l, rec_l, mu_l, logvar_l, mask_l)
      terms_u = adversarial.vae_loss_terms(x_u, rec_u, mu_u, logvar_u, mask_u)
      reconstruction = terms_l['reconstruction'] + terms_u['reconstruction']
      kl = terms_l['kl'] + terms_u['kl']
      adv = adversarial.vae_adversarial_loss(
          d_apply({'params': state.discriminator.params}, mu_l, r_l),
          d_apply({'params': state.discriminator.params}, mu_u, r_u), mask_l, mask_u)
      total = reconstruction + cfg.beta * kl + cfg.adversary_weight * adv
      return total, (updates['batch_stats'], {'vae_loss': total,
                                              'vae_reconstruction': reconstruction,
                                              'vae_kl': kl, 'vae_adversarial': adv})

    (_, (vae_stats, vae_metrics)), grads = jax.value_and_grad(vae_loss, has_aux=True)(
        state.vae.params)
    vae = apply_gradients(self.vae_tx, state.vae, grads, vae_stats,
                          schedule['vae_learning_rate'])

    # 3. D on the latent means of the updated VAE (Eq. 6).
    mu_l, stats = self._encode({'params': vae.params, 'batch_stats': vae.batch_stats}, x_l, True)
    mu_u, stats = self._encode({'params': vae.params, 'batch_stats': stats}, x_u, True)
    vae = vae.replace(batch_stats=stats)
    discriminator, d_metrics = discriminator_step(
        d_apply, self.discriminator_tx, state.discriminator, (mu_l, r_l), (mu_u, r_u), mask_l,
        mask_u, schedule['discriminator_learning_rate'])
    metrics = {**metrics, **vae_metrics, **d_metrics}
    return AdversarialState(task, vae, discriminator), metrics

  def _schedule(self, epoch: int, epochs: int) -> dict[str, np.float32]:
    cfg = self.settings
    return {**epoch_schedule(self.config.train, epoch, epochs),
            'vae_learning_rate': np.float32(optim.learning_rate(cfg.vae_train, epoch, epochs)),
            'discriminator_learning_rate': np.float32(
                optim.learning_rate(cfg.discriminator_train, epoch, epochs))}

  def fit(self, state, images, labels, pool, *, key, description) -> base.Fit:
    """The task model, the VAE and D, trained together (Algorithm 1).

    Returns:
      The task model's state; the metrics of the last epoch (the task
      model's, the VAE's terms, D's loss, accuracy and mean outputs); and in
      ``aux`` the VAE's and D's variables, for the query.
    """
    epochs = self.config.train.epochs
    vae, discriminator = self.init_networks(jax.random.fold_in(key, 1))
    joint = AdversarialState(state, vae, discriminator)
    joint, metrics = self.joint.fit(
        joint, images, labels, pool.labeled, pool.unlabeled, epochs=epochs,
        schedule_fn=lambda epoch: self._schedule(epoch, epochs), key=key,
        description=f'{description} + VAE and discriminator')
    networks = {'vae': {'params': joint.vae.params, 'batch_stats': joint.vae.batch_stats},
                'discriminator': {'params': joint.discriminator.params}}
    return base.Fit(joint.task, metrics, aux=networks)

  # -- query (Eq. 7) --------------------------------------------------------------

  def _logits_impl(self, networks, task_variables, images, idx):
    """D's logits on ``images[idx]`` (see the module docstring for the VAE's batch norm)."""
    spec = self.data.spec
    x = augment.normalize(images[idx], spec.mean, spec.std)
    mu, _ = self._encode(networks['vae'], x, self.settings.query_batch_statistics)
    return self.discriminator.apply(networks['discriminator'], mu, self.rank(task_variables, x))

  def discriminator_logits(self, ctx: base.RoundContext, indices: np.ndarray) -> np.ndarray:
    """float32 ``[n]``: D's logits on ``images[indices]`` (this round's networks)."""
    if ctx.fitted is None:
      raise JalError(f'{self.config.strategy.name}: query without this round\'s fit; the VAE '
                     'and the discriminator are trained with the task model')
    return inference.map_batches(self._logits, (ctx.fitted, ctx.task.variables, ctx.images),
                                 indices, self.config.eval_batch_size,
                                 self.trainer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    logits = self.discriminator_logits(ctx, ctx.candidates)
    labeled = self.discriminator_logits(ctx, ctx.pool.labeled)
    ctx.metrics.update(adversarial.pool_diagnostics(labeled, logits))
    # The lowest D: the candidates D is surest are unlabeled.
    return selection.top_k(-logits, ctx.candidates, budget)
