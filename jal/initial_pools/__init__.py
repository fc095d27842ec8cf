"""Initial-pool strategies: the labeled pool of round 0, chosen before any label.

Chandra, Desai, Devaguptapu & Balasubramanian, "On Initial Pools for Deep
Active Learning" (2021). With no labels there is no task model to score
with; the paper (Sec. 3.2) instead

- trains a self-supervised model on the whole unlabeled pool and labels the
  examples whose self-supervised loss is highest (Eq. 1: ``argmax_i
  L^tau(x_i; theta)``): ``'pretext_loss'`` (rotation prediction, Gidaris et
  al. 2018) and ``'vae_loss'`` (a VAE's reconstruction, Kingma & Welling 2014);
- clusters the unlabeled pool into ``K`` clusters (``K`` = the number of
  classes, known a priori) and samples ``B / K`` examples from each cluster
  (``allocation='equal'``) or ``|C_j| B / N_U`` (``'proportional'``):
  ``'kmeans'``, on the self-supervised features;
- (Sec. 4.1, after Roy et al. 2018) sorts the loss of Eq. 1, splits the order
  into ``n`` equal bins and takes ``B / n`` of the hardest of each of the top
  ``n - 1`` bins and ``B / n`` of the easiest of the last: ``'binned'``.

Two low-budget query strategies also choose initial pools, on the eligible
examples' self-supervised features (SimCLR by default, Chen et al. 2020):
``'typiclust'`` (Hacohen, Dekel & Weinshall 2022: the most typical example of
each of the ``B`` largest k-means clusters) and ``'probcover'`` (Yehuda et
al. 2022: greedy max coverage of δ-balls, δ by the purity rule), with the
settings of ``config.strategy.typiclust`` / ``config.strategy.probcover``
(`jal.strategies.typiclust`, `jal.strategies.probcover`; their ``features``
key chooses the network).

``'random'`` is the usual uniform pool (`random_pool`, the ``(seed,
'initial_pool')`` stream), drawn as jal always has, so existing runs keep
their pools.

Where the paper is silent, jal chooses (and the tests pin down):

- The self-supervised models train on the whole train split, labels unused
  (``-1``), with ``config.initial_pool.exclude_classes`` included: those
  classes are unlabeled data too. Only the selection is restricted to the
  eligible examples (outside the excluded classes, PAL's biased-pool
  scenario; the loop computes them from the simulated oracle's labels), for
  every strategy; k-means clusters the eligible examples only, so ``N_U``
  and ``|C_j|`` count the pool the picks are drawn from.
- The rotation loss of an example is the rotation head's cross-entropy,
  averaged over its four rotations (Gidaris et al., Eq. 2 for one image), in
  eval mode on the unaugmented image. The VAE's loss is its reconstruction
  MSE (mean over pixels and channels) with ``z`` the posterior mean, in eval
  mode: "hard to reconstruct images" (Sec. 3.2), without the KL term.
- k-means features: the rotation network's pooled penultimate features of
  the unrotated image, or the VAE's posterior means, as they are (no
  standardisation); scikit-learn's ``KMeans`` (Lloyd, k-means++ seeding)
  with ``kmeans_n_init`` restarts and a ``random_state`` drawn from the seed.
- Fractional shares: see `jal.selection.cluster_allocation` (water-filling
  for ``'equal'``, largest remainders for ``'proportional'``) and
  `jal.selection.binned` (the remainder to the hardest bins).
- Training defaults follow the paper's Sec. 4 (Adam, lr 5e-4, weight decay
  5e-4, horizontal flips only); the paper gives no epochs for the
  self-supervised models: 15.
- The SimCLR network (``features='simclr'``) is the rotation network's
  backbone (``ssl_model``) with a projection head (``simclr.projection_dim``
  = 128), trained like the others (Adam 5e-4, weight decay 5e-4, 15 epochs)
  but with batches of 128 images (256 views: NT-Xent wants many negatives)
  and SimCLR's augmentation instead of flips; ``simclr.temperature`` 0.5
  (Chen et al.'s CIFAR-10 setting, App. B.9). Its features are the pooled
  backbone output, before the head.
- TypiClust and ProbCover pools cluster and cover the eligible examples
  only, with nothing labeled yet (every cluster is uncovered).

Randomness: every stream derives from ``config.seed`` (`jal.rng`), so a pool
is the same in every run, strategy and resumption of a trial.
"""

from __future__ import annotations

import collections
import hashlib
import json

import jax
import ml_collections
import numpy as np

from jal import rng, selection
from jal.data import PoolData
from jal.errors import JalError, check_choice
from jal.initial_pools.self_supervised import (TRACE_COUNTS, VAE_MIN_SIDE, rotation_losses,
                                               simclr_features, vae_losses)
from jal.train.config import train_config

__all__ = ['ALLOCATIONS', 'FEATURES', 'NAMES', 'SCORES', 'TRACE_COUNTS', 'VAE_MIN_SIDE',
           'check_settings', 'default_config', 'random_pool', 'rotation_losses',
           'select_initial_pool', 'self_supervised_features', 'simclr_features', 'vae_losses']

NAMES = ('random', 'pretext_loss', 'vae_loss', 'kmeans', 'binned', 'typiclust', 'probcover')
ALLOCATIONS = ('equal', 'proportional')
SCORES = ('pretext_loss', 'vae_loss')
FEATURES = ('rotation', 'vae', 'simclr')


def default_config(**overrides) -> ml_collections.ConfigDict:
  """``config.initial_pool``: every key of the initial pool, with its default.

  Keys:
    name: the strategy, one of ``'random'`` (uniform; the default),
      ``'pretext_loss'`` (highest rotation loss), ``'vae_loss'`` (highest VAE
      reconstruction loss), ``'kmeans'`` (per-cluster sampling) and
      ``'binned'`` (Sec. 4.1's bins of a loss), ``'typiclust'`` and
      ``'probcover'`` (settings: ``config.strategy.typiclust`` /
      ``config.strategy.probcover``).
    size: the pool's size, a count or a fraction of the train split (below 1).
    exclude_classes: classes never in the initial pool (PAL's biased pool,
      Sec. 4.3); they stay in the unlabeled pool.
    allocation: ``'kmeans'``: ``'equal'`` (``B / K`` per cluster) or
      ``'proportional'`` (``|C_j| B / N_U``); see `jal.selection.cluster_allocation`.
    num_bins: ``'binned'``: ``n`` (the paper uses 2, 5 and 10).
    score: ``'binned'``: the loss that is sorted, ``'pretext_loss'`` or
      ``'vae_loss'``.
    features: ``'kmeans'``: what is clustered, ``'rotation'`` (the rotation
      network's penultimate features), ``'vae'`` (the VAE's latent means) or
      ``'simclr'`` (the SimCLR network's pooled backbone features).
    kmeans_n_init: k-means restarts (the best inertia is kept).
    ssl_model: the rotation network's backbone: ``name`` (``'small_cnn'``,
      ``'resnet18'``, ``'vgg16'``; the paper: ResNet-18), ``width`` (None:
      the architecture's default) and ``dtype``.
    ssl_train: how the rotation network is trained (a
      `jal.train.config.train_config`; its ``epochs`` and ``batch_size`` too).
    vae: the VAE (`jal.models.VAE`): ``z_dim``, ``width`` (channels of the
      first convolution), ``dtype``. It needs images of at least 16x16.
    vae_train: how the VAE is trained.
    beta: the weight of the VAE's KL term (per example, as in
      `jal.objectives.adversarial.vae_loss_terms`).
    simclr: the SimCLR network's head and loss: ``projection_dim`` (128) and
      ``temperature`` (0.5); its backbone is ``ssl_model``.
    simclr_train: how the SimCLR network is trained (``crop_pad`` unused:
      its views are `jal.data.augment.simclr_augment`'s).

  Args:
    **overrides: keys to set, e.g. ``name='kmeans'``.

  Returns:
    A new ``ConfigDict``.
  """
  cfg = ml_collections.ConfigDict(dict(
      name='random', size=0.1, exclude_classes=(),
      allocation='equal', num_bins=5, score='pretext_loss', features='rotation',
      kmeans_n_init=10,
      ssl_model=dict(name='small_cnn',
                     width=ml_collections.FieldReference(None, field_type=int),
                     dtype='float32'),
      # Chandra et al., Sec. 4: Adam, lr 5e-4, weight decay 5e-4, flips only;
      # no epochs given.
      ssl_train=train_config(optimizer='adam', learning_rate=5e-4, momentum=0.0,
                             weight_decay=5e-4, epochs=15, batch_size=64, crop_pad=0),
      vae=dict(z_dim=32, width=64, dtype='float32'),
      # VAAL's optimiser for its VAE (Adam 5e-4).
      vae_train=train_config(optimizer='adam', learning_rate=5e-4, momentum=0.0,
                             weight_decay=0.0, epochs=15, batch_size=64, crop_pad=0),
      beta=1.0,
      # Chen et al. 2020: the MLP head's 128 outputs, T = 0.5 on CIFAR-10
      # (App. B.9); trained like the rotation network, batches of 128.
      simclr=dict(projection_dim=128, temperature=0.5),
      simclr_train=train_config(optimizer='adam', learning_rate=5e-4, momentum=0.0,
                                weight_decay=5e-4, epochs=15, batch_size=128, crop_pad=0)))
  cfg.update(overrides)
  return cfg


def _complete(pool_config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``pool_config`` over `default_config`: a config may set only some keys."""
  cfg = default_config()
  cfg.update(pool_config.to_dict() if hasattr(pool_config, 'to_dict') else dict(pool_config))
  return cfg


def check_settings(pool_config: ml_collections.ConfigDict) -> None:
  """Checks ``config.initial_pool``'s choices, before anything is trained.

  Missing keys take `default_config`'s defaults.

  Raises:
    JalError: an unknown name, allocation, score or features, or a bad
      ``num_bins`` or ``kmeans_n_init``, naming the key and the choices.
  """
  cfg = _complete(pool_config)
  choices = {'name': NAMES, 'allocation': ALLOCATIONS, 'score': SCORES, 'features': FEATURES}
  for key, allowed in choices.items():
    check_choice(cfg[key], allowed, f'config.initial_pool.{key}')
  for key, lowest in (('num_bins', 1), ('kmeans_n_init', 1)):
    value = cfg[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
      raise JalError(f'config.initial_pool.{key}={value!r} must be an integer of at least '
                     f'{lowest} (num_bins: the paper uses 2, 5 or 10)')


def random_pool(eligible: np.ndarray, size: int, rng_: np.random.Generator) -> np.ndarray:
  """``size`` of the ``eligible`` indices, uniformly at random, sorted.

  Args:
    eligible: int ``[n]``: the train indices the pool may hold.
    size: ``0 <= size <= n``.
    rng_: the generator that fixes the draw (one ``choice``).

  Returns:
    int64 ``[size]``, sorted.

  Raises:
    JalError: ``size`` is larger than ``n``.
  """
  eligible = np.asarray(eligible, np.int64)
  if size > eligible.size:
    raise JalError(f'the initial pool of {size} is larger than the {eligible.size} examples '
                   'outside the excluded classes; lower config.initial_pool.size')
  return np.sort(rng_.choice(eligible, size, replace=False)).astype(np.int64)


# Self-supervised networks' outputs in this process, by everything they depend on
# (`_trained_key`): a run whose initial pool and queries both read a network
# (TypiClust for both), or a comparison's arms of one seed, train it once. The
# newest `MAX_TRAINED` are kept: each holds its [N, D] features (CIFAR-10 at
# D = 512: 102 MB).
_TRAINED: collections.OrderedDict[str, tuple] = collections.OrderedDict()
MAX_TRAINED = 4
# The keys of ``config.initial_pool`` each network reads (`_train_self_supervised`).
_NETWORK_SETTINGS = {'rotation': ('ssl_model', 'ssl_train'), 'vae': ('vae', 'vae_train', 'beta'),
                     'simclr': ('ssl_model', 'simclr', 'simclr_train')}


def _trained_key(network: str, cfg, batch_size: int, data: PoolData, mesh, key) -> str:
  """What a network's outputs depend on: the network, the settings it reads, the feature
  pass's batch size, the key, the devices and the images."""
  settings = {name: cfg[name].to_dict() if hasattr(cfg[name], 'to_dict') else cfg[name]
              for name in _NETWORK_SETTINGS[network]}
  images = np.ascontiguousarray(data.images)
  return json.dumps({
      'network': network, 'settings': settings, 'batch_size': batch_size,
      'key': jax.random.key_data(key).tobytes().hex(), 'spec': repr(data.spec),
      'devices': None if mesh is None else [int(d) for d in mesh.devices.shape],
      'processes': jax.process_count(),
      'images': [list(images.shape), hashlib.sha256(images).hexdigest()]},
      sort_keys=True, default=str)


def _self_supervised(kind: str, config, data, mesh, key) -> tuple[np.ndarray, np.ndarray]:
  """``(losses [N], features [N, D])`` of the rotation network or of the VAE; ``(None,
  features)`` of the SimCLR network: trained, or remembered from an identical
  training earlier in this process (`_TRAINED`), as NumPy copies."""
  cfg = _complete(config.initial_pool)
  batch_size = config.get('eval_batch_size', 500)
  network = 'rotation' if kind == 'pretext_loss' else 'vae' if kind == 'vae_loss' else kind
  memo = _trained_key(network, cfg, batch_size, data, mesh, key)
  if memo not in _TRAINED:
    _TRAINED[memo] = tuple(None if out is None else np.asarray(out) for out in
                           _train_self_supervised(network, cfg, batch_size, data, mesh, key))
    while len(_TRAINED) > MAX_TRAINED:
      _TRAINED.popitem(last=False)
  _TRAINED.move_to_end(memo)
  return tuple(None if out is None else out.copy() for out in _TRAINED[memo])


def _train_self_supervised(network: str, cfg, batch_size: int, data, mesh, key):
  """`_self_supervised`'s training: ``network`` is ``'rotation'``, ``'vae'`` or ``'simclr'``."""
  if network == 'simclr':
    return None, simclr_features(data, mesh, model_config=cfg.ssl_model,
                                 train_config=cfg.simclr_train,
                                 temperature=cfg.simclr.temperature,
                                 projection_dim=cfg.simclr.projection_dim,
                                 key=jax.random.fold_in(key, 2), batch_size=batch_size)
  if network == 'rotation':
    return rotation_losses(data, mesh, model_config=cfg.ssl_model, train_config=cfg.ssl_train,
                           key=jax.random.fold_in(key, 0), batch_size=batch_size)
  return vae_losses(data, mesh, vae_config=cfg.vae, train_config=cfg.vae_train, beta=cfg.beta,
                    key=jax.random.fold_in(key, 1), batch_size=batch_size)


def self_supervised_features(config: ml_collections.ConfigDict, data: PoolData,
                             mesh: jax.sharding.Mesh, features: str,
                             key: jax.Array | None = None) -> np.ndarray:
  """float32 ``[N, D]``: the ``features`` network's features of the whole train split.

  The network of `select_initial_pool` with ``config.initial_pool``'s
  settings (``'rotation'``: ``ssl_model``, ``ssl_train``; ``'vae'``: ``vae``,
  ``vae_train``, ``beta``; ``'simclr'``: ``ssl_model``, ``simclr``,
  ``simclr_train``) and, by default, the same key (from ``config.seed``):
  the same network as the initial pool's, trained once per process (an
  identical training earlier in the process is reused). TypiClust and
  ProbCover query on these.

  Raises:
    JalError: an unknown ``features`` or a failed training.
  """
  check_choice(features, FEATURES, 'features')
  key = rng.key(config.seed, 'initial_pool_ssl') if key is None else key
  return np.asarray(_self_supervised(features, config, data, mesh, key)[1], np.float32)


def _strategy_settings(config: ml_collections.ConfigDict, name: str):
  """``config.strategy.<name>`` over the strategy module's defaults, checked."""
  import importlib
  module = importlib.import_module(f'jal.strategies.{name}')
  settings = module.default_config()
  strategy = config.get('strategy')
  section = strategy.get(name) if strategy is not None else None
  if section is not None:
    settings.update(section.to_dict() if hasattr(section, 'to_dict') else dict(section))
  module.check_settings(settings, f'config.strategy.{name}')
  return module, settings


def _kmeans(features: np.ndarray, num_clusters: int, n_init: int, seed: int) -> np.ndarray:
  """int64 ``[n]`` cluster ids of ``features`` ``[n, D]`` by scikit-learn's k-means."""
  from sklearn.cluster import KMeans  # heavy; only this strategy needs it
  random_state = int(rng.numpy_rng(seed, 'initial_pool_kmeans').integers(2**31 - 1))
  kmeans = KMeans(n_clusters=min(num_clusters, features.shape[0]), n_init=n_init,
                  random_state=random_state)
  return kmeans.fit_predict(np.asarray(features, np.float64)).astype(np.int64)


def select_initial_pool(config: ml_collections.ConfigDict, data: PoolData,
                        mesh: jax.sharding.Mesh, size: int, eligible: np.ndarray,
                        key: jax.Array | None = None) -> np.ndarray:
  """The initial labeled pool of ``config.initial_pool.name`` (Chandra et al., Sec. 3.2, 4.1).

  - ``'random'``: `random_pool` with the ``(config.seed, 'initial_pool')``
    generator: the pool jal has always drawn.
  - ``'pretext_loss'`` / ``'vae_loss'``: `jal.selection.highest_scores` of
    `rotation_losses` / `vae_losses`.
  - ``'kmeans'``: k-means with ``K = data.num_classes`` clusters of the
    eligible examples' self-supervised ``features``, then
    `jal.selection.sample_clusters` with ``allocation``.
  - ``'binned'``: `jal.selection.binned` over the ``score`` loss with
    ``num_bins`` bins.
  - ``'typiclust'`` / ``'probcover'``: the query of
    `jal.strategies.typiclust` / `jal.strategies.probcover` with nothing
    labeled, over the eligible examples' features (``features`` of
    ``config.strategy.typiclust`` / ``.probcover``); ProbCover's δ from the
    eligible examples.

  Only ``eligible`` examples are picked; the self-supervised models learn
  from the whole train split.

  Args:
    config: the experiment config; reads ``seed``, ``eval_batch_size`` and
      ``initial_pool`` (missing keys: `default_config`'s).
    data: the pool's images (no labels are read).
    mesh: the ``('data',)`` mesh.
    size: the pool's size, a count (``config.initial_pool.size`` resolved by
      `jal.pool.resolve_count`).
    eligible: int ``[n]``, sorted: the train indices the pool may hold (all,
      or those outside ``config.initial_pool.exclude_classes``).
    key: PRNG key of the self-supervised models; None (default): derived from
      ``config.seed``. The NumPy draws (random, clusters, k-means) always
      derive from ``config.seed``.

  Returns:
    int64 ``[size]`` distinct train indices, sorted; the same for the same
    seed and config.

  Raises:
    JalError: a bad setting (see `check_settings`), more than the eligible
      examples asked for, or a failed training; each names the config key.
  """
  check_settings(config.initial_pool)
  cfg = _complete(config.initial_pool)
  eligible = np.asarray(eligible, np.int64)
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (
      1 <= size <= eligible.size):
    raise JalError(f'config.initial_pool.size={size} must be a count from 1 to the '
                   f'{eligible.size} examples outside the excluded classes '
                   f'{list(cfg.exclude_classes)}; lower config.initial_pool.size')
  size = int(size)
  if cfg.name in ('typiclust', 'probcover'):
    module, settings = _strategy_settings(config, cfg.name)
  if cfg.name == 'random':
    return random_pool(eligible, size, rng.numpy_rng(config.seed, 'initial_pool'))
  key = rng.key(config.seed, 'initial_pool_ssl') if key is None else key
  if cfg.name in ('pretext_loss', 'vae_loss'):
    losses, _ = _self_supervised(cfg.name, config, data, mesh, key)
    chosen = selection.highest_scores(losses[eligible], size)
  elif cfg.name == 'binned':
    losses, _ = _self_supervised(cfg.score, config, data, mesh, key)
    chosen = selection.binned(losses[eligible], size, int(cfg.num_bins))
  elif cfg.name in ('typiclust', 'probcover'):
    _, features = _self_supervised(settings.features, config, data, mesh, key)
    features = module.prepare(features[eligible], bool(settings.normalize))
    if cfg.name == 'typiclust':
      chosen = module.picks(features, 0, size, settings,
                            rng.numpy_rng(config.seed, 'initial_pool_typiclust'))
    else:
      delta = module.purity_delta(features, data.num_classes, settings,
                                  rng.numpy_rng(config.seed, 'initial_pool_pseudo_labels'))
      chosen, _ = module.picks(features, 0, size, delta,
                               rng.numpy_rng(config.seed, 'initial_pool_probcover'))
  else:  # 'kmeans'
    _, features = _self_supervised(cfg.features, config, data, mesh, key)
    ids = _kmeans(features[eligible], data.num_classes, int(cfg.kmeans_n_init), config.seed)
    chosen = selection.sample_clusters(ids, size, cfg.allocation,
                                       rng.numpy_rng(config.seed, 'initial_pool_clusters'))
  return np.sort(eligible[chosen]).astype(np.int64)
