"""Initial-pool strategies: the labeled pool of round 0, chosen before any label.

Chandra, Desai, Devaguptapu & Balasubramanian, "On Initial Pools for Deep
Active Learning" (paper 001). With no labels there is no task model to score
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

``'random'`` is the usual uniform pool, drawn exactly as `jal.experiment`
always has (``jal.pool.initial_indices`` with the ``(seed, 'initial_pool')``
stream), so existing runs keep their pools.

Where the paper is silent, jal chooses (and the tests pin down):

- The self-supervised models train on the whole train split, labels unused
  (``-1``), with ``config.initial_pool.exclude_classes`` included: those
  classes are unlabeled data too. Only the selection is restricted to the
  eligible examples (outside the excluded classes, PAL's biased-pool
  scenario), for every strategy; k-means clusters the eligible examples
  only, so ``N_U`` and ``|C_j|`` count the pool the picks are drawn from.
- The rotation loss of an example is the rotation head's cross-entropy,
  averaged over its four rotations (Gidaris et al., Eq. 2 for one image), in
  eval mode on the unaugmented image. The VAE's loss is its reconstruction
  MSE (mean over pixels and channels) with ``z`` the posterior mean, in eval
  mode: "hard to reconstruct images" (Sec. 3.2), without the KL term.
- k-means features: the rotation network's pooled penultimate features of
  the unrotated image, or the VAE's posterior means, as they are (no
  standardisation); scikit-learn's ``KMeans`` (Lloyd, k-means++ seeding)
  with ``kmeans_n_init`` restarts and a ``random_state`` drawn from the seed.
- Fractional shares: see `cluster_allocation` (water-filling for ``'equal'``,
  largest remainders for ``'proportional'``) and `binned` (the remainder to
  the hardest bins).
- Training defaults follow the paper's Sec. 4 (Adam, lr 5e-4, weight decay
  5e-4, horizontal flips only); the paper gives no epochs for the
  self-supervised models: 15.

Randomness: every stream derives from ``config.seed`` (`jal.rng`), so a pool
is the same in every run, strategy and resumption of a trial.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np

from jal import pool as pool_lib, rng, selection
from jal.data import Dataset
from jal.errors import JalError
# The self-supervised scorers (re-exported: `rotation_losses`, `vae_losses`).
from jal.self_supervised import TRACE_COUNTS, VAE_MIN_SIDE, rotation_losses, vae_losses

__all__ = ['ALLOCATIONS', 'FEATURES', 'NAMES', 'SCORES', 'TRACE_COUNTS', 'VAE_MIN_SIDE',
           'bin_shares', 'binned', 'check_settings', 'cluster_allocation', 'highest_scores',
           'initial_pool_config', 'rotation_losses', 'sample_clusters', 'select_initial_pool',
           'vae_losses']

NAMES = ('random', 'pretext_loss', 'vae_loss', 'kmeans', 'binned')
ALLOCATIONS = ('equal', 'proportional')
SCORES = ('pretext_loss', 'vae_loss')
FEATURES = ('rotation', 'vae')


def initial_pool_config(**overrides) -> ml_collections.ConfigDict:
  """``config.initial_pool``: every key of the initial pool, with its default.

  Keys:
    name: the strategy, one of ``'random'`` (uniform; the default),
      ``'pretext_loss'`` (highest rotation loss), ``'vae_loss'`` (highest VAE
      reconstruction loss), ``'kmeans'`` (per-cluster sampling) and
      ``'binned'`` (Sec. 4.1's bins of a loss).
    size: the pool's size, a count or a fraction of the train split (below 1).
    exclude_classes: classes never in the initial pool (PAL's biased pool,
      Sec. 4.3); they stay in the unlabeled pool.
    allocation: ``'kmeans'``: ``'equal'`` (``B / K`` per cluster) or
      ``'proportional'`` (``|C_j| B / N_U``); see `cluster_allocation`.
    num_bins: ``'binned'``: ``n`` (the paper uses 2, 5 and 10).
    score: ``'binned'``: the loss that is sorted, ``'pretext_loss'`` or
      ``'vae_loss'``.
    features: ``'kmeans'``: what is clustered, ``'rotation'`` (the rotation
      network's penultimate features) or ``'vae'`` (the VAE's latent means).
    kmeans_n_init: k-means restarts (the best inertia is kept).
    ssl_model: the rotation network's backbone: ``name`` (``'small_cnn'``,
      ``'resnet18'``, ``'vgg16'``; the paper: ResNet-18), ``width`` (None:
      the architecture's default) and ``dtype``.
    ssl_train: how the rotation network is trained (a
      `jal.config_util.train_config`; its ``epochs`` and ``batch_size`` too).
    vae: the VAE (`jal.models.VAE`): ``z_dim``, ``width`` (channels of the
      first convolution), ``dtype``. It needs images of at least 16x16.
    vae_train: how the VAE is trained.
    beta: the weight of the VAE's KL term (per example, as in
      `jal.adversarial.vae_loss_terms`).

  Args:
    **overrides: keys to set, e.g. ``name='kmeans'``.

  Returns:
    A new ``ConfigDict``.
  """
  # Imported here: jal.config_util may import this module for its base config.
  from jal import config_util
  cfg = ml_collections.ConfigDict(dict(
      name='random', size=0.1, exclude_classes=(),
      allocation='equal', num_bins=5, score='pretext_loss', features='rotation',
      kmeans_n_init=10,
      ssl_model=dict(name='small_cnn',
                     width=ml_collections.FieldReference(None, field_type=int),
                     dtype='float32'),
      # Paper 001, Sec. 4: Adam, lr 5e-4, weight decay 5e-4, flips only.
      ssl_train=config_util.train_config(optimizer='adam', learning_rate=5e-4, momentum=0.0,
                                         weight_decay=5e-4, epochs=15, batch_size=64,
                                         crop_pad=0),
      vae=dict(z_dim=32, width=64, dtype='float32'),
      # VAAL's optimiser for its VAE (Adam 5e-4).
      vae_train=config_util.train_config(optimizer='adam', learning_rate=5e-4, momentum=0.0,
                                         weight_decay=0.0, epochs=15, batch_size=64,
                                         crop_pad=0),
      beta=1.0))
  cfg.update(overrides)
  return cfg


# ---------------------------------------------------------------- selection ----


def _scores_1d(scores: np.ndarray) -> np.ndarray:
  scores = np.asarray(scores)
  if scores.ndim != 1:
    raise ValueError(f'scores must be 1-D, got shape {scores.shape}')
  if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
    raise ValueError('a score is NaN')
  return scores


def _count(size: int, limit: int, what: str) -> int:
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
    raise ValueError(f'{what} must be an integer, got {size!r}')
  if not 0 <= size <= limit:
    raise ValueError(f'{what}={size} must be in [0, {limit}]')
  return int(size)


def _descending(scores: np.ndarray) -> np.ndarray:
  """Indices by score, highest first; equal scores in index order."""
  # np.lexsort sorts by the last key first, and is stable.
  return np.lexsort((np.arange(scores.size), -scores.astype(np.float64)))


def highest_scores(scores: np.ndarray, size: int) -> np.ndarray:
  """The ``size`` highest scores (paper 001, Eq. 1: ``argmax_i L(x_i)``).

  Args:
    scores: float or int ``[n]``, no NaN.
    size: how many, ``0 <= size <= n``.

  Returns:
    int64 ``[size]`` positions in ``scores``, highest score first; equal
    scores go to the lower position first.

  Raises:
    ValueError: ``scores`` is not 1-D or holds a NaN, or ``size`` is out of range.
  """
  scores = _scores_1d(scores)
  size = _count(size, scores.size, 'size')
  return _descending(scores)[:size].astype(np.int64)


def bin_shares(size: int, num_bins: int) -> list[int]:
  """``size`` split into ``num_bins`` shares that differ by at most one, larger first."""
  return [size // num_bins + (1 if i < size % num_bins else 0) for i in range(num_bins)]


def binned(scores: np.ndarray, size: int, num_bins: int) -> np.ndarray:
  """Hard and easy examples from ``n`` bins of the score order (paper 001, Sec. 4.1).

  After Roy et al. (BMVC 2018): the examples sorted by score, highest
  (hardest) first, are split into ``n = num_bins`` bins of equal size
  (``np.array_split``: the first ``len % n`` bins hold one more); the ``size
  / n`` highest-scored of each of the top ``n - 1`` bins and the ``size / n``
  lowest-scored of the last bin are taken. When ``n`` does not divide
  ``size``, the first ``size % n`` bins (the hardest) take one more
  (`bin_shares`). No bin is ever smaller than its share when ``size <= len``:
  the bins and the shares split ``len`` and ``size`` by the same rule, so
  nothing needs redistributing. ``n = 1`` takes the ``size`` lowest scores.

  Equal scores keep index order in the sort, so the top bins take the lower
  index first and the last bin (read from its end) the higher one.

  Args:
    scores: float or int ``[N]``, no NaN.
    size: how many, ``0 <= size <= N``.
    num_bins: ``n >= 1`` (the paper: 2, 5, 10).

  Returns:
    int64 ``[size]`` positions in ``scores``, bin by bin: each top bin's picks
    hardest first, then the last bin's, easiest first.

  Raises:
    ValueError: ``scores`` is not 1-D or holds a NaN, ``size`` is out of
      range, or ``num_bins`` is not a positive integer.
  """
  scores = _scores_1d(scores)
  size = _count(size, scores.size, 'size')
  if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
    raise ValueError(f'num_bins must be a positive integer, got {num_bins!r}')
  bins = np.array_split(_descending(scores), num_bins)
  shares = bin_shares(size, num_bins)
  picks = [b[:share] for b, share in zip(bins[:-1], shares[:-1])]
  last, share = bins[-1], shares[-1]
  picks.append(last[last.size - share:][::-1])
  return np.concatenate(picks).astype(np.int64)


def cluster_allocation(cluster_sizes: np.ndarray, size: int, mode: str) -> np.ndarray:
  """How many examples each cluster gives (paper 001, Sec. 3.2).

  ``'equal'``: ``B / K`` per cluster. A cluster with fewer members gives all
  it has and the others share its deficit (water-filling): the level ``L``
  is the largest with ``sum_k min(n_k, L) <= B``, cluster ``k`` gives
  ``min(n_k, L)``, and the ``r < #{k : n_k > L}`` picks left over go one
  each to the largest clusters with members left (equal sizes: lower index
  first). With no small cluster this is ``B // K`` each, and one more for
  ``B % K`` clusters.

  ``'proportional'``: ``|C_j| B / N_U`` (``N_U`` = the total), rounded by
  largest remainders: the floors, then one more to the clusters with the
  largest fractional parts (ties: lower index). Computed in integers, so
  exact; a cluster never gives more than it holds.

  Args:
    cluster_sizes: int ``[K]`` (``K >= 1``), the members of each cluster, ``>= 0``.
    size: the budget ``B >= 0``; more than the total takes everything.
    mode: ``'equal'`` or ``'proportional'``.

  Returns:
    int64 ``[K]`` with ``0 <= a_k <= n_k``, summing to ``min(size, total)``.

  Raises:
    ValueError: a bad shape, size, count or mode.
  """
  sizes = np.asarray(cluster_sizes)
  if sizes.ndim != 1 or sizes.size == 0:
    raise ValueError(f'cluster_sizes must be 1-D and non-empty, got shape {sizes.shape}')
  if not np.issubdtype(sizes.dtype, np.integer):
    if not np.all(np.equal(np.mod(sizes, 1), 0)):
      raise ValueError(f'cluster_sizes must be integers, got {sizes}')
  sizes = sizes.astype(np.int64)
  if (sizes < 0).any():
    raise ValueError(f'cluster_sizes must be non-negative, got {sizes}')
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 0:
    raise ValueError(f'size must be a non-negative integer, got {size!r}')
  total = int(sizes.sum())
  budget = min(int(size), total)
  by_index = np.arange(sizes.size)
  if mode == 'equal':
    allocation = np.minimum(sizes, selection.water_level(sizes, budget))
    left = budget - int(allocation.sum())
    # Largest clusters first, ties to the lower index; only n_k > L have room.
    order = np.lexsort((by_index, -sizes))
    allocation[order[:left]] += 1
  elif mode == 'proportional':
    if total == 0:
      return np.zeros(sizes.size, np.int64)
    allocation, remainder = np.divmod(sizes * budget, total)
    left = budget - int(allocation.sum())
    order = np.lexsort((by_index, -remainder))
    allocation[order[:left]] += 1
  else:
    raise ValueError(f"mode must be 'equal' or 'proportional', got {mode!r}")
  return allocation.astype(np.int64)


def sample_clusters(cluster_ids: np.ndarray, size: int, mode: str,
                    rng_: np.random.Generator) -> np.ndarray:
  """Draws `cluster_allocation`'s share of each cluster uniformly at random.

  Args:
    cluster_ids: int ``[N]``, the cluster of each example, ``>= 0``; ``K =
      max + 1`` clusters (an id with no member is an empty cluster).
    size: the budget ``B >= 0`` (more than ``N`` takes everything).
    mode: ``'equal'`` or ``'proportional'``.
    rng_: the NumPy generator of the draws, one ``choice`` per cluster in
      cluster order.

  Returns:
    int64 ``[min(size, N)]`` positions in ``cluster_ids``, sorted.

  Raises:
    ValueError: bad ids, size or mode.
  """
  ids = np.asarray(cluster_ids)
  if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
    raise ValueError(f'cluster_ids must be a non-empty 1-D int array, got {ids.dtype} {ids.shape}')
  if (ids < 0).any():
    raise ValueError('cluster_ids must be non-negative')
  allocation = cluster_allocation(np.bincount(ids), size, mode)
  picks = [rng_.choice(np.flatnonzero(ids == k), count, replace=False)
           for k, count in enumerate(allocation) if count]
  return np.sort(np.concatenate(picks) if picks else np.zeros(0)).astype(np.int64)


# ------------------------------------------------------------------ dispatch ----


def _setting(cfg: ml_collections.ConfigDict, name: str, defaults: ml_collections.ConfigDict) -> Any:
  return cfg.get(name, defaults[name])


def check_settings(pool_config: ml_collections.ConfigDict) -> None:
  """Checks ``config.initial_pool``'s choices, before anything is trained.

  Missing keys take `initial_pool_config`'s defaults.

  Raises:
    JalError: an unknown name, allocation, score or features, or a bad
      ``num_bins`` or ``kmeans_n_init``, naming the key and the choices.
  """
  defaults = initial_pool_config()
  choices = {'name': NAMES, 'allocation': ALLOCATIONS, 'score': SCORES, 'features': FEATURES}
  for key, allowed in choices.items():
    value = _setting(pool_config, key, defaults)
    if value not in allowed:
      raise JalError(f'config.initial_pool.{key}={value!r} is unknown; use one of '
                     f"{', '.join(repr(a) for a in allowed)}")
  for key, lowest in (('num_bins', 1), ('kmeans_n_init', 1)):
    value = _setting(pool_config, key, defaults)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
      raise JalError(f'config.initial_pool.{key}={value!r} must be an integer of at least '
                     f'{lowest} (num_bins: the paper uses 2, 5 or 10)')


def _ssl_key(config: ml_collections.ConfigDict, key: jax.Array | None) -> jax.Array:
  return rng.key(config.seed, 'initial_pool_ssl') if key is None else key


def _self_supervised(kind: str, config, dataset, mesh, key) -> tuple[np.ndarray, np.ndarray]:
  """``(losses [N], features [N, D])`` of the rotation network or of the VAE."""
  defaults = initial_pool_config()
  cfg = config.initial_pool
  batch_size = config.get('eval_batch_size', 500)
  if kind in ('pretext_loss', 'rotation'):
    return rotation_losses(dataset, mesh, model_config=_setting(cfg, 'ssl_model', defaults),
                           train_config=_setting(cfg, 'ssl_train', defaults),
                           key=jax.random.fold_in(key, 0), batch_size=batch_size)
  return vae_losses(dataset, mesh, vae_config=_setting(cfg, 'vae', defaults),
                    train_config=_setting(cfg, 'vae_train', defaults),
                    beta=_setting(cfg, 'beta', defaults), key=jax.random.fold_in(key, 1),
                    batch_size=batch_size)


def _kmeans(features: np.ndarray, num_clusters: int, n_init: int, seed: int) -> np.ndarray:
  """int64 ``[n]`` cluster ids of ``features`` ``[n, D]`` by scikit-learn's k-means."""
  from sklearn.cluster import KMeans  # heavy; only this strategy needs it
  random_state = int(rng.numpy_rng(seed, 'initial_pool_kmeans').integers(2**31 - 1))
  kmeans = KMeans(n_clusters=min(num_clusters, features.shape[0]), n_init=n_init,
                  random_state=random_state)
  return kmeans.fit_predict(np.asarray(features, np.float64)).astype(np.int64)


def select_initial_pool(config: ml_collections.ConfigDict, dataset: Dataset,
                        mesh: jax.sharding.Mesh, size: int,
                        key: jax.Array | None = None) -> np.ndarray:
  """The initial labeled pool of ``config.initial_pool.name`` (paper 001, Sec. 3.2, 4.1).

  - ``'random'``: `jal.pool.initial_indices` with the ``(config.seed,
    'initial_pool')`` generator: the pool jal has always drawn.
  - ``'pretext_loss'`` / ``'vae_loss'``: `highest_scores` of
    `rotation_losses` / `vae_losses`.
  - ``'kmeans'``: k-means with ``K = dataset.num_classes`` clusters of the
    eligible examples' self-supervised ``features``, then `sample_clusters`
    with ``allocation``.
  - ``'binned'``: `binned` over the ``score`` loss with ``num_bins`` bins.

  Only examples outside ``exclude_classes`` are picked; the self-supervised
  models learn from the whole train split.

  Args:
    config: the experiment config; reads ``seed``, ``eval_batch_size`` and
      ``initial_pool`` (missing keys: `initial_pool_config`'s defaults).
    dataset: the dataset; its train split is the unlabeled pool.
    mesh: the ``('data',)`` mesh.
    size: the pool's size, a count (``config.initial_pool.size`` resolved by
      `jal.pool.resolve_count`).
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
  defaults = initial_pool_config()
  cfg = config.initial_pool
  name = _setting(cfg, 'name', defaults)
  exclude = tuple(_setting(cfg, 'exclude_classes', defaults))
  eligible = np.flatnonzero(~np.isin(dataset.train_labels, np.asarray(exclude, np.int64)))
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not (
      1 <= size <= eligible.size):
    raise JalError(f'config.initial_pool.size={size} must be a count from 1 to the '
                   f'{eligible.size} examples outside the excluded classes {list(exclude)}; '
                   'lower config.initial_pool.size')
  size = int(size)
  if name == 'random':
    return pool_lib.initial_indices(dataset.train_labels, size,
                                    rng.numpy_rng(config.seed, 'initial_pool'), exclude)
  key = _ssl_key(config, key)
  if name in ('pretext_loss', 'vae_loss'):
    losses, _ = _self_supervised(name, config, dataset, mesh, key)
    chosen = highest_scores(losses[eligible], size)
  elif name == 'binned':
    losses, _ = _self_supervised(_setting(cfg, 'score', defaults), config, dataset, mesh, key)
    chosen = binned(losses[eligible], size, int(_setting(cfg, 'num_bins', defaults)))
  else:  # 'kmeans'
    _, features = _self_supervised(_setting(cfg, 'features', defaults), config, dataset, mesh,
                                   key)
    ids = _kmeans(features[eligible], dataset.num_classes,
                  int(_setting(cfg, 'kmeans_n_init', defaults)), config.seed)
    chosen = sample_clusters(ids, size, _setting(cfg, 'allocation', defaults),
                             rng.numpy_rng(config.seed, 'initial_pool_clusters'))
  return np.sort(eligible[chosen]).astype(np.int64)
