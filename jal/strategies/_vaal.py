"""VAAL and TA-VAAL: a VAE and a latent discriminator trained against each other.

VAAL (Sinha, Ebrahimi & Darrell, ICCV 2019) trains a β-VAE on the labeled and
the unlabeled pool and a discriminator D on its latent mean that tells the
pools apart (1 = labeled), while the VAE's encoder learns to fool D; the query
takes the unlabeled examples D is surest are unlabeled (the lowest D). TA-VAAL
(Kim et al., CVPR 2021, paper 004) adds the task learner's ranker R (a loss
prediction module trained with the pairwise ranking loss, Eq. 1-2) and gives
both the VAE's decoder and D the normalised rank ``r = sigmoid(R(x))``
(Eqs. 3-7).

Training follows TA-VAAL's Algorithm 1, which interleaves everything: each
step of an epoch over the labeled pool updates, from one labeled and one
unlabeled batch and in one compiled step (`jal.two_pool.TwoPoolTrainer`),

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
reference ``solver.py``); each method trains only what it needs (DESIGN.md:
TA-VAAL's public code trains every method with the ranker by mistake).

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
and running averages mix the two pools. Measured on CIFAR-10 runlocal with
classes 5-9 kept out of the labeled pool and ``adversary_weight=0``: with
batch statistics the query took 458 of 500 from the unseen classes and D's
mean output was 0.60 on the labeled pool against 0.54 on the candidates; with
running averages, 270 of 500 and 0.568 against 0.561. The query also writes D's
mean output on the labeled pool and on the candidates, and D's accuracy at
0.5, to ``results.jsonl`` (``query_metrics``); the training metrics of the
last epoch (D's loss, accuracy and mean outputs, the VAE's terms) are in
``train_metrics``.

Config (``config.strategy``): ``vae`` (``z_dim``, ``width``, ``dtype``),
``vae_train`` and ``discriminator_train`` (``optimizer``, ``learning_rate``;
the epochs are the task model's), ``discriminator`` (``width``,
``num_hidden``), ``beta``, ``adversary_weight``,
``query_batch_statistics``, and for TA-VAAL
``ranking_weight`` (eta), ``ranker_epochs`` and ``loss_prediction_width``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jal import adversarial, augment, inference, optim, rng, selection, sharding, training
from jal import two_pool
from jal.errors import JalError
from jal.models import VAE, LatentDiscriminator
from jal.strategies import base


class AdversarialState(struct.PyTreeNode):
  """The three networks of one VAAL / TA-VAAL iteration."""
  task: training.TrainState
  vae: training.TrainState
  discriminator: training.TrainState


def _split(x: jax.Array, b: int) -> tuple[jax.Array, jax.Array]:
  return x[:b], x[b:]


class AdversarialStrategy(base.Strategy):
  """VAAL (``conditioned = False``) and TA-VAAL (``conditioned = True``)."""

  conditioned = False

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if cfg.beta < 0 or cfg.adversary_weight < 0:
      raise JalError(f'{cfg.name}: config.strategy.beta={cfg.beta} and adversary_weight='
                     f'{cfg.adversary_weight} must be non-negative')
    self.vae = VAE(z_dim=cfg.vae.z_dim, width=cfg.vae.width, image_shape=dataset.image_shape,
                   dtype=cfg.vae.get('dtype', 'float32'))
    self.discriminator = LatentDiscriminator(width=cfg.discriminator.width,
                                             num_hidden=cfg.discriminator.num_hidden)
    self.vae_tx = optim.make_optimizer(cfg.vae_train)
    self.discriminator_tx = optim.make_optimizer(cfg.discriminator_train)
    self._init_networks = jax.jit(self._init_networks_impl,
                                  out_shardings=sharding.replicated(mesh))
    self._trainer = None  # the task model's Trainer, known at the first fit
    self._fitted = None  # this round's VAE and D variables, for the query

  # -- networks ---------------------------------------------------------------

  def _condition_spec(self, batch: int) -> jax.Array | None:
    return jnp.zeros((batch, 1), jnp.float32) if self.conditioned else None

  def _init_networks_impl(self, key):
    vae_key, d_key = jax.random.split(rng.init_key(key))
    x = jnp.zeros((1, *self.dataset.image_shape), jnp.float32)
    vae = self.vae.init({'params': vae_key}, x, False, self._condition_spec(1))
    z = jnp.zeros((1, self.vae.z_dim), jnp.float32)
    discriminator = self.discriminator.init({'params': d_key}, z, self._condition_spec(1))
    return (training.init_state(self.vae_tx, vae),
            training.init_state(self.discriminator_tx, discriminator))

  def _rank(self, trainer, task_variables, x) -> jax.Array | None:
    """``r = sigmoid(R(x))`` ``[B, 1]`` of the task model in eval mode (None for VAAL)."""
    if not self.conditioned:
      return None
    outputs = trainer.model.apply(task_variables, x, train=False)
    return jax.nn.sigmoid(outputs['loss_prediction'].astype(jnp.float32))[:, None]

  def _encode(self, variables, x, train):
    """The VAE's posterior mean (and updated batch statistics when ``train``)."""
    if train:
      (mu, _), updates = self.vae.apply(variables, x, True, method=VAE.encode,
                                        mutable=['batch_stats'])
      return mu, updates['batch_stats']
    return self.vae.apply(variables, x, False, method=VAE.encode)[0], None

  # -- the compiled step (TA-VAAL Algorithm 1, one iteration) --------------------

  def _step(self, trainer, state, images, labels, idx_l, mask_l, idx_u, schedule, key):
    cfg = self.strategy_config
    keys = jax.random.split(key, 6)
    b = idx_l.shape[0]
    x_l = trainer.prepare(keys[0], images, idx_l)
    x_u = trainer.prepare(keys[1], images, idx_u)
    mask_u = jnp.ones_like(mask_l)
    r = self._rank(trainer, state.task.variables, jnp.concatenate([x_l, x_u]))
    if r is not None:  # Algorithm 1, lines 5-6: r ~ U(0, 1) in the first epoch.
      r = jnp.where(schedule['progress'] == 0, jax.random.uniform(keys[2], r.shape), r)
      r = jax.lax.stop_gradient(r)
    r_l, r_u = _split(r, b) if r is not None else (None, None)

    # 1. The task learner (and the ranker, until it is frozen).
    task, metrics = trainer.update(state.task, x_l, labels[idx_l], mask_l, schedule, keys[3])

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
    vae = training.apply_gradients(self.vae_tx, state.vae, grads, vae_stats,
                                   schedule['vae_learning_rate'])

    # 3. D on the latent means of the updated VAE (Eq. 6).
    mu_l, stats = self._encode({'params': vae.params, 'batch_stats': vae.batch_stats}, x_l, True)
    mu_u, stats = self._encode({'params': vae.params, 'batch_stats': stats}, x_u, True)
    vae = vae.replace(batch_stats=stats)
    discriminator, d_metrics = two_pool.discriminator_step(
        d_apply, self.discriminator_tx, state.discriminator, (mu_l, r_l), (mu_u, r_u), mask_l,
        mask_u, schedule['discriminator_learning_rate'])
    metrics = {**metrics, **vae_metrics, **d_metrics}
    return AdversarialState(task, vae, discriminator), metrics

  def _schedule(self, epoch: int, epochs: int) -> dict[str, np.float32]:
    cfg = self.strategy_config
    return {**training.epoch_schedule(self.config.train, epoch, epochs),
            'vae_learning_rate': np.float32(optim.learning_rate(cfg.vae_train, epoch, epochs)),
            'discriminator_learning_rate': np.float32(
                optim.learning_rate(cfg.discriminator_train, epoch, epochs))}

  def _bind(self, trainer: training.Trainer) -> None:
    """Compiles the two-pool step and the query's scores for the task ``trainer``."""
    if self._trainer is trainer:
      return
    self._trainer = trainer
    self._two_pool = two_pool.TwoPoolTrainer(
        functools.partial(self._step, trainer), batch_size=trainer.train_config.batch_size,
        mesh=self.mesh, compiled_epochs=trainer.compiled_epochs)
    self._logits = jax.jit(functools.partial(self._logits_impl, trainer))

  def fit_task_model(self, trainer, state, images, labels, pool, *, epochs, key, description):
    self._bind(trainer)
    vae, discriminator = self._init_networks(jax.random.fold_in(key, 1))
    joint = AdversarialState(state, vae, discriminator)
    joint, metrics = self._two_pool.fit(
        joint, images, labels, pool.labeled, pool.unlabeled, epochs=epochs,
        schedule_fn=lambda epoch: self._schedule(epoch, epochs), key=key,
        description=f'{description} + VAE and discriminator')
    self._fitted = {'vae': {'params': joint.vae.params, 'batch_stats': joint.vae.batch_stats},
                    'discriminator': {'params': joint.discriminator.params}}
    return joint.task, metrics

  # -- query (Eq. 7) --------------------------------------------------------------

  def _logits_impl(self, trainer, networks, task_variables, images, idx):
    """D's logits on ``images[idx]`` (see `query` for the VAE's batch norm)."""
    x = augment.normalize(images[idx], self.dataset.mean, self.dataset.std)
    mu, _ = self._encode(networks['vae'], x, self.strategy_config.query_batch_statistics)
    return self.discriminator.apply(networks['discriminator'], mu,
                                    self._rank(trainer, task_variables, x))

  def discriminator_logits(self, ctx: base.RoundContext, indices: np.ndarray) -> np.ndarray:
    """float32 ``[n]``: D's logits on ``images[indices]`` (this round's networks)."""
    if self._fitted is None:
      raise JalError(f'{self.strategy_config.name}: query before fit_task_model; the VAE and '
                     'the discriminator are trained with the task model')
    return inference.map_batches(self._logits, (self._fitted, ctx.task.variables, ctx.images),
                                 indices, self.config.eval_batch_size,
                                 self._trainer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    logits = self.discriminator_logits(ctx, ctx.candidates)
    labeled = self.discriminator_logits(ctx, ctx.pool.labeled)
    ctx.metrics.update(adversarial.pool_diagnostics(labeled, logits))
    # The lowest D: the candidates D is surest are unlabeled.
    return selection.top_k(-logits, ctx.candidates, budget)
