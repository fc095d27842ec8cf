"""TypiClust: typical examples of uncovered clusters (Hacohen, Dekel & Weinshall, ICML 2022).

"Active Learning on a Budget: Opposite Strategies Suit High and Low Budgets"
(Sec. 4): in the low-budget regime, query typical examples, spread over
the data. The features are those of a self-supervised network trained on
the whole unlabeled pool (the paper: SimCLR, from SCAN's code), L2-normalised
as in the authors' code. Every query clusters the labeled pool and the
candidates into ``min(|L| + B, 500)`` clusters (scikit-learn's ``KMeans``
up to 50 clusters, ``MiniBatchKMeans`` with batches of 5,000 above, as the
authors' code does) and takes, from the largest clusters with the fewest
labeled examples, their most typical candidates (`jal.acquisition.typiclust`).
The task model is trained as usual; the query does not read it.

The self-supervised network (``features``: ``'simclr'``, the paper's;
``'rotation'``; ``'vae'``) is `jal.initial_pools.self_supervised_features`,
with ``config.initial_pool``'s settings (``ssl_model``, ``simclr``,
``simclr_train``, ...) and the key of ``config.seed``: it is trained once,
at the strategy's first query (building it trains nothing), on the whole train
split, labels unused, and a resumed run trains the same network again (the
same seed, the same features). Its cost is that of one initial-pool network
(15 epochs over the pool by default; figures in ``experiments/README.md``).
With ``config.initial_pool.name='typiclust'`` and the same ``features``, the
initial pool trains the same network once more (the same key).

Settings (``config.strategy.typiclust``, also read by the ``'typiclust'``
initial pool): ``features``, ``max_clusters`` (500), ``min_cluster_size``
(5), ``num_neighbors`` (``K`` = 20), ``kmeans_n_init`` (restarts, the best
inertia kept: 3, ``MiniBatchKMeans``'s default; the code left ``KMeans`` at
scikit-learn's default of the time, 10), ``normalize`` (L2-normalise the
features; True).

Cost, besides the network: k-means of ``m + n`` points (``m`` labeled, ``n``
candidates) into ``min(m + B, 500)`` clusters on the host, and the
candidates' typicality on the device, O(n^2 d) compute in ``[256, n]``
blocks (`jal.acquisition.typiclust.typicality`: every pair is compared,
then masked to its cluster).
"""

from __future__ import annotations


import jax
import ml_collections
import numpy as np

from jal import initial_pools
from jal.acquisition import coreset, typiclust
from jal.errors import JalError, check_choice
from jal.strategies import _self_supervised, base
from jal.strategies._self_supervised import prepare


def default_config() -> ml_collections.ConfigDict:
  """TypiClust's settings: the authors' code's (module docstring)."""
  return ml_collections.ConfigDict(dict(
      features='simclr', max_clusters=typiclust.MAX_CLUSTERS,
      min_cluster_size=typiclust.MIN_CLUSTER_SIZE, num_neighbors=typiclust.NUM_NEIGHBORS,
      kmeans_n_init=3, normalize=True))


def check_settings(settings: ml_collections.ConfigDict, key: str) -> None:
  """Refuses bad settings with one line naming ``key.<setting>``.

  Raises:
    JalError: an unknown ``features`` or a count below its minimum.
  """
  check_choice(settings.features, initial_pools.FEATURES, f'{key}.features')
  for name, lowest in (('max_clusters', 1), ('min_cluster_size', 0), ('num_neighbors', 1),
                       ('kmeans_n_init', 1)):
    value = settings[name]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
      raise JalError(f'{key}.{name}={value!r} must be an integer of at least {lowest}')


def kmeans(features: np.ndarray, num_clusters: int, n_init: int,
           rng_: np.random.Generator) -> np.ndarray:
  """int64 ``[n]`` cluster ids: ``KMeans`` up to 50 clusters, ``MiniBatchKMeans`` (batches
  of 5,000) above, as the authors' code; ``random_state`` drawn from ``rng_``."""
  from sklearn.cluster import KMeans, MiniBatchKMeans  # heavy; only here
  num_clusters = min(num_clusters, features.shape[0])
  random_state = int(rng_.integers(2**31 - 1))
  if num_clusters <= 50:
    model = KMeans(n_clusters=num_clusters, n_init=n_init, random_state=random_state)
  else:
    model = MiniBatchKMeans(n_clusters=num_clusters, batch_size=5000, n_init=n_init,
                            random_state=random_state)
  return model.fit_predict(np.asarray(features, np.float64)).astype(np.int64)


def picks(features: np.ndarray, num_labeled: int, budget: int,
          settings: ml_collections.ConfigDict, rng_: np.random.Generator) -> np.ndarray:
  """TypiClust's picks among rows ``num_labeled:`` of ``features`` (the first rows labeled).

  Args:
    features: float32 ``[m + n, D]``, prepared (`prepare`): the labeled
      pool's rows, then the candidates'.
    num_labeled: ``m``.
    budget: picks wanted.
    settings: `default_config`'s keys.
    rng_: the k-means seed's generator.

  Returns:
    int64 ``[min(budget, n)]``: distinct positions into the candidates
    (rows ``m:``), in the order picked.
  """
  n = features.shape[0] - num_labeled
  k = min(int(budget), n)
  if k <= 0:
    return np.zeros(0, np.int64)
  ids = kmeans(features, typiclust.num_clusters(num_labeled, k, settings.max_clusters),
               int(settings.kmeans_n_init), rng_)
  cand_ids = ids[num_labeled:]
  size = coreset.bucket_size(n)
  padded = np.zeros((size, features.shape[1]), np.float32)
  padded[:n] = features[num_labeled:]
  clusters = np.full(size, -1, np.int32)
  clusters[:n] = cand_ids
  neighbors = typiclust.neighbor_counts(clusters, int(settings.num_neighbors))
  typ = typiclust.typicality(jax.device_put(padded), jax.device_put(clusters),
                             jax.device_put(neighbors),
                             max_neighbors=int(settings.num_neighbors))
  typ = np.asarray(jax.device_get(typ))[:n]
  return typiclust.select(cand_ids, ids[:num_labeled], typ, k, int(settings.min_cluster_size))


class Strategy(_self_supervised.Strategy):
  """Queries the most typical candidates of the largest uncovered clusters."""

  not_for_segmentation = ('it picks whole images by one self-supervised feature vector each '
                          '(typicality and clusters of images), with no per-pixel notion')

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    check_settings(self.settings, self.section)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The TypiClust picks among the candidates.

    Returns:
      int64 ``[min(budget, n)]``: distinct candidates, in the order picked.
    """
    labeled, rows = self.rows(ctx)
    chosen = picks(rows, labeled.size, budget, self.settings, ctx.numpy_rng('typiclust_kmeans'))
    ctx.metrics['typiclust_clusters'] = float(
        typiclust.num_clusters(labeled.size, chosen.size, self.settings.max_clusters))
    ctx.metrics['ssl_seconds'] = float(self.ssl_seconds)
    return np.asarray(ctx.candidates, np.int64)[chosen]
