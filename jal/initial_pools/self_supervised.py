"""Self-supervised scorers of the unlabeled pool, for the initial pools of Chandra et al. (2021).

Each trains a network on the whole train split without labels and returns a
per-example loss (their Eq. 1: the higher, the harder) and
per-example features (for k-means): a rotation predictor (Gidaris et al.
2018, PAL's pretext task) and a VAE (Kingma & Welling 2014). A SimCLR network
(Chen et al. 2020) gives features only, for k-means and for TypiClust and
ProbCover (`jal.strategies.typiclust`, `jal.strategies.probcover`). The
scores come from one compiled pass per network (`TRACE_COUNTS` counts the
traces). `jal.initial_pools` turns them into a pool.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from jal import sharding
from jal.data import PoolData, augment
from jal.errors import JalError
from jal.models import VAE, MultiHeadNet, ProjectionHead, RotationHead, get_backbone
from jal.objectives import adversarial, contrastive, pretext
from jal.train import Trainer, fit, inference

# The smallest side `jal.models.VAE` takes (four stride-2 convolutions).
VAE_MIN_SIDE = 16

# How often the batch scoring functions were traced (each is compiled once
# per distinct network, whatever the number of calls).
TRACE_COUNTS = {'rotation': 0, 'vae': 0, 'simclr': 0}


def _device_data(data: PoolData, mesh: jax.sharding.Mesh) -> tuple[jax.Array, jax.Array]:
  """The train images on the device and a label array of -1 (no label is read)."""
  on_device = sharding.replicated(mesh)
  return (jax.device_put(data.images, on_device),
          jax.device_put(np.full(data.num_train, -1, np.int32), on_device))


@functools.partial(jax.jit, static_argnums=(0,))
def _rotation_scores(model, mean, std, variables, images, idx):
  """Per-example rotation loss ``[B]`` and unrotated features ``[B, D]`` (eval mode)."""
  TRACE_COUNTS['rotation'] += 1
  b = idx.shape[0]
  x = augment.rotations(augment.normalize(images[idx], mean, std))  # [4, B, H, W, C]
  outputs = model.apply(variables, x.reshape(4 * b, *x.shape[2:]), train=False)
  logits = outputs['rotation'].astype(jnp.float32).reshape(4, b, 4)
  labels = jnp.broadcast_to(jnp.arange(4)[:, None], (4, b))
  loss = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels), axis=0)
  return loss, outputs['features'][:b].astype(jnp.float32)  # rotation 0: the image itself


def rotation_losses(data: PoolData, mesh: jax.sharding.Mesh, *,
                    model_config: ml_collections.ConfigDict,
                    train_config: ml_collections.ConfigDict, key: jax.Array,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """Rotation-prediction losses of the whole train split (Chandra et al. 2021, Eq. 1).

  A backbone with a `RotationHead` (a `MultiHeadNet`, head ``'rotation'``)
  learns the 4-way rotation pretext task (Gidaris et al., ICLR 2018: 0, 90,
  180, 270 degrees, every rotation of each batch image in one batch; the
  loss of `jal.objectives.pretext.pretext_loss`) on every train example, labels
  unused, with ``train_config``'s optimiser, epochs and augmentation.

  Args:
    data: the pool's images (square), labels unused.
    mesh: the ``('data',)`` mesh.
    model_config: ``name``, ``width`` (None: default), ``dtype`` of the backbone.
    train_config: a `jal.train.config.train_config`.
    key: PRNG key of the initialisation, batch order and augmentation.
    batch_size: fixed batch size of the scoring pass (a multiple of the devices).

  Returns:
    ``(losses, features)``: float32 ``[N]``, each example's cross-entropy of
    the rotation head averaged over its four rotations, and float32 ``[N,
    D]``, the pooled penultimate features of the unrotated image; both in
    eval mode on unaugmented images.

  Raises:
    JalError: images that are not square, a bad model or training setting,
      or the loss became non-finite.
  """
  shape = data.spec.shape
  if shape[0] != shape[1]:
    raise JalError(f'the rotation network of config.initial_pool needs square images, '
                   f'{data.name} has {shape[0]}x{shape[1]}; set config.dataset.image_size')
  backbone = get_backbone(model_config.name, width=model_config.get('width'),
                          dtype=model_config.get('dtype', 'float32'))
  model = MultiHeadNet(backbone, {'rotation': RotationHead()})
  return _fit_and_score(model, pretext.pretext_loss, _rotation_scores, data, mesh,
                        train_config=train_config, key=key, batch_size=batch_size,
                        description='initial pool: rotation network')


def _fit_and_score(model, loss_fn, score_fn, data: PoolData, mesh: jax.sharding.Mesh, *,
                   train_config, key: jax.Array, batch_size: int, description: str,
                   trainer_class=Trainer, views: int = 1):
  """Trains ``model`` with ``loss_fn`` on the whole train split, then maps
  ``score_fn(model, mean, std, variables, images, idx)`` over it in batches."""
  trainer = trainer_class(model, loss_fn, train_config, data.spec, mesh, views=views)
  sharding.check_batch_size(batch_size, mesh, 'config.eval_batch_size')
  images, labels = _device_data(data, mesh)
  state = trainer.init(jax.random.fold_in(key, 0))
  state, _ = fit(trainer, state, images, labels, np.arange(data.num_train),
                          epochs=train_config.epochs, key=jax.random.fold_in(key, 1),
                          description=description)
  return inference.map_batches(
      functools.partial(score_fn, model), (data.spec.mean, data.spec.std, state.variables,
                                           images),
      np.arange(data.num_train), batch_size, trainer.batch_sharding)


@functools.partial(jax.jit, static_argnums=(0,))
def _vae_scores(model, mean, std, variables, images, idx):
  """Per-example reconstruction MSE ``[B]`` (``z = mu``, eval mode) and ``mu`` ``[B, z]``."""
  TRACE_COUNTS['vae'] += 1
  x = augment.normalize(images[idx], mean, std)
  reconstruction, mu, _ = model.apply(variables, x, False)  # no 'sample' stream: z = mu
  error = jnp.square(x - reconstruction).reshape(x.shape[0], -1)
  return jnp.mean(error, axis=-1), mu


def vae_losses(data: PoolData, mesh: jax.sharding.Mesh, *,
               vae_config: ml_collections.ConfigDict,
               train_config: ml_collections.ConfigDict, beta: float, key: jax.Array,
               batch_size: int) -> tuple[np.ndarray, np.ndarray]:
  """VAE reconstruction losses of the whole train split (Chandra et al. 2021, Sec. 3.2).

  VAAL's β-VAE (`jal.models.VAE`) learns ``MSE + beta * KL``
  (`jal.objectives.adversarial.vae_objective`, ``z`` sampled by reparameterisation) on
  every train example, labels unused, with ``train_config``'s optimiser
  (the default: Adam), epochs and augmentation.

  Args:
    data: the pool's images (at least 16x16), labels unused.
    mesh: the ``('data',)`` mesh.
    vae_config: ``z_dim``, ``width``, ``dtype``.
    train_config: a `jal.train.config.train_config`.
    beta: the KL weight, ``>= 0``.
    key: PRNG key of the initialisation, batch order, augmentation and ``z``.
    batch_size: fixed batch size of the scoring pass (a multiple of the devices).

  Returns:
    ``(losses, latents)``: float32 ``[N]``, each example's reconstruction
    MSE (mean over pixels and channels of the normalised image) with ``z =
    mu``, and float32 ``[N, z_dim]``, the posterior means; both in eval mode
    (running batch-norm averages) on unaugmented images.

  Raises:
    JalError: images smaller than 16x16, a negative ``beta``, a bad training
      setting, or the loss became non-finite.
  """
  shape = data.spec.shape
  if min(shape[:2]) < VAE_MIN_SIDE:
    raise JalError(f'the VAE of config.initial_pool needs images of at least {VAE_MIN_SIDE}x'
                   f'{VAE_MIN_SIDE}, {data.name} has {shape[0]}x{shape[1]}; '
                   f'set config.dataset.image_size={VAE_MIN_SIDE} '
                   '(or more)')
  if beta < 0:
    raise JalError(f'config.initial_pool.beta={beta} must be non-negative (1 is the plain VAE)')
  model = VAE(z_dim=vae_config.z_dim, width=vae_config.width, image_shape=shape,
              dtype=vae_config.get('dtype', 'float32'))
  loss = functools.partial(adversarial.vae_objective, beta=float(beta))
  return _fit_and_score(model, loss, _vae_scores, data, mesh, train_config=train_config, key=key,
                        batch_size=batch_size, description='initial pool: VAE')


class _SimCLRTrainer(Trainer):
  """A `Trainer` whose views are SimCLR's augmentation (`jal.data.augment.simclr_augment`)
  instead of crop-and-flip."""

  def prepare(self, key: jax.Array, images: jax.Array, idx: jax.Array) -> jax.Array:
    x = augment.simclr_augment(key, images[idx],
                               flip=self.spec.flip and self.train_config.get('flip', True))
    return (x - self.spec.mean) / self.spec.std


@functools.partial(jax.jit, static_argnums=(0,))
def _simclr_scores(model, mean, std, variables, images, idx):
  """The backbone's pooled features ``[B, D]`` of the unaugmented images (eval mode)."""
  TRACE_COUNTS['simclr'] += 1
  outputs = model.apply(variables, augment.normalize(images[idx], mean, std), train=False)
  return outputs['features'].astype(jnp.float32)


def simclr_features(data: PoolData, mesh: jax.sharding.Mesh, *,
                    model_config: ml_collections.ConfigDict,
                    train_config: ml_collections.ConfigDict, temperature: float,
                    projection_dim: int, key: jax.Array, batch_size: int) -> np.ndarray:
  """SimCLR features of the whole train split (Chen, Kornblith, Norouzi & Hinton, ICML 2020).

  A backbone with a projection head (`jal.models.ProjectionHead`: Dense ->
  ReLU -> Dense(``projection_dim``), L2-normalised; Chen et al.'s MLP head,
  Sec. 2.1) learns NT-Xent (`jal.objectives.contrastive.nt_xent_loss`, their
  Eq. 1, with ``temperature``) on two views of every image of a batch
  (`jal.data.augment.simclr_augment`: resized crop, flip, colour jitter,
  greyscale), on every train example, labels unused, with ``train_config``'s
  optimiser, epochs and batch size (``2 * batch_size`` views per step). The
  features are the backbone's pooled output, before the projection head, as
  Chen et al. prescribe (Sec. 2.1, 4.2: the layer before the head represents
  better).

  Cost: ``epochs * N`` images through the network twice (two views) and
  back, about twice a rotation network's epoch of the same backbone (which
  sees four rotations of a batch, at half the batch size by default), then
  one eval pass over ``N`` images.

  Args:
    data: the pool's images, labels unused.
    mesh: the ``('data',)`` mesh.
    model_config: ``name``, ``width`` (None: default), ``dtype`` of the backbone.
    train_config: a `jal.train.config.train_config` (``crop_pad`` is not
      read: the views are `simclr_augment`'s).
    temperature: NT-Xent's ``T``, above 0.
    projection_dim: the projection head's output width.
    key: PRNG key of the initialisation, batch order and augmentation.
    batch_size: fixed batch size of the feature pass (a multiple of the devices).

  Returns:
    float32 ``[N, D]``: the pooled backbone features, in eval mode on the
    unaugmented images (not normalised: TypiClust and ProbCover normalise).

  Raises:
    JalError: a temperature that is not positive, a bad model or training
      setting, or the loss became non-finite.
  """
  if not temperature > 0:
    raise JalError(f'config.initial_pool.simclr.temperature={temperature} must be above 0 '
                   '(Chen et al. use 0.5 on CIFAR-10)')
  backbone = get_backbone(model_config.name, width=model_config.get('width'),
                          dtype=model_config.get('dtype', 'float32'))
  model = MultiHeadNet(backbone, {'projection': ProjectionHead(dim=int(projection_dim))})
  loss = functools.partial(contrastive.simclr_objective, temperature=float(temperature))
  return _fit_and_score(model, loss, _simclr_scores, data, mesh, train_config=train_config,
                        key=key, batch_size=batch_size, description='self-supervised: SimCLR',
                        trainer_class=_SimCLRTrainer, views=2)
