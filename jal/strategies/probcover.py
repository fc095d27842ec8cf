"""ProbCover: greedy max coverage of δ-balls (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022).

"Active Learning Through a Covering Lens" (Sec. 3-4): in the low-budget
regime, query the candidates whose δ-balls in a self-supervised embedding
cover the most points not yet covered by the labeled pool's balls
(`jal.acquisition.probcover.greedy_cover`, on the labeled pool and the
candidates, with Euclidean distances between L2-normalised features as in
the authors' code). δ is chosen once per experiment as the paper does
(Sec. 4.1): the largest radius with ball purity at least ``alpha`` (0.95)
on k-means pseudo-labels (``K`` = the number of classes) of the whole train
split's features (`jal.acquisition.probcover.purity_delta`); a number in
``delta`` sets it instead. The task model is trained as usual; the query
does not read it.

The self-supervised network (``features``: ``'simclr'``, the paper's;
``'rotation'``; ``'vae'``) is `jal.initial_pools.self_supervised_features`
with ``config.initial_pool``'s settings and the key of ``config.seed``:
trained once, at the strategy's first query (building it trains nothing), on
the whole train split, labels
unused; a resumed run trains the same network again (same seed, same
features), and chooses the same δ.

Cost, besides the network: the purity δ compares every pair of the ``N``
train examples once (O(N^2 d) on the device, O(N * 256) memory); each query
is O((m + n)^2 d) for ``m`` labeled and ``n`` candidates (building the graph
once, plus every point newly covered once), also O((m + n) * 256) memory.

Settings (``config.strategy.probcover``, also read by the ``'probcover'``
initial pool): ``features``, ``delta`` (None: purity), ``alpha``,
``kmeans_n_init``, ``normalize`` (True).
"""

from __future__ import annotations


import jax
import ml_collections
import numpy as np

from jal import initial_pools, rng
from jal.acquisition import coreset, probcover
from jal.errors import JalError, check_choice
from jal.strategies import _self_supervised, base
from jal.strategies._self_supervised import prepare
from jal.strategies.typiclust import kmeans


def default_config() -> ml_collections.ConfigDict:
  """ProbCover's settings (module docstring)."""
  return ml_collections.ConfigDict(dict(
      features='simclr', delta=ml_collections.FieldReference(None, field_type=float),
      alpha=probcover.ALPHA, kmeans_n_init=3, normalize=True))


def check_settings(settings: ml_collections.ConfigDict, key: str) -> None:
  """Refuses bad settings with one line naming ``key.<setting>``.

  Raises:
    JalError: an unknown ``features``, a ``delta`` that is not positive, an
      ``alpha`` outside ``(0, 1]`` or ``kmeans_n_init`` below 1.
  """
  check_choice(settings.features, initial_pools.FEATURES, f'{key}.features')
  delta = settings.get('delta')
  if delta is not None and not delta > 0:
    raise JalError(f'{key}.delta={delta!r} must be above 0 (None: the purity rule)')
  if not 0 < settings.alpha <= 1:
    raise JalError(f'{key}.alpha={settings.alpha!r} must be in (0, 1] (the paper: 0.95)')
  n_init = settings.kmeans_n_init
  if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
    raise JalError(f'{key}.kmeans_n_init={n_init!r} must be an integer of at least 1')


def _padded(features: np.ndarray) -> tuple[jax.Array, np.ndarray]:
  """Features on the device, zero rows up to `coreset.bucket_size` (a few compilations),
  and the bool mask of the real rows."""
  n = features.shape[0]
  size = coreset.bucket_size(n)
  padded = np.zeros((size, features.shape[1]), np.float32)
  padded[:n] = features
  return jax.device_put(padded), np.arange(size) < n


def purity_delta(features: np.ndarray, num_classes: int, settings: ml_collections.ConfigDict,
                 rng_: np.random.Generator) -> float:
  """δ: ``settings.delta`` if set, else the largest radius with purity ``>= alpha`` on k-means
  pseudo-labels with ``num_classes`` clusters (Yehuda et al. 2022, Sec. 4.1).

  Raises:
    JalError: fewer than two pseudo-labels (every ball is pure: set ``delta``).
  """
  if settings.get('delta') is not None:
    return float(settings.delta)
  labels = kmeans(features, max(num_classes, 2), int(settings.kmeans_n_init), rng_)
  points, real = _padded(features)
  padded_labels = np.zeros(real.size, np.int32)
  padded_labels[:labels.size] = labels
  distances = probcover.other_label_distance(points, jax.device_put(padded_labels),
                                             jax.device_put(real))
  try:
    return probcover.purity_delta(np.asarray(jax.device_get(distances))[:labels.size],
                                  float(settings.alpha))
  except ValueError as e:
    raise JalError(f'probcover: {e}; set config.strategy.probcover.delta') from e


def picks(features: np.ndarray, num_labeled: int, budget: int, delta: float,
          rng_: np.random.Generator) -> tuple[np.ndarray, float]:
  """ProbCover's picks among rows ``num_labeled:`` of ``features`` (the first rows labeled).

  Args:
    features: float32 ``[m + n, D]``, prepared: the labeled pool's rows,
      then the candidates'.
    num_labeled: ``m``.
    budget: picks wanted.
    delta: the radius.
    rng_: the generator of the order of picks once everything is covered.

  Returns:
    int64 ``[min(budget, n)]`` distinct positions into the candidates (rows
    ``m:``), in the order picked, and the fraction of the ``m + n`` points
    covered afterwards.
  """
  total = features.shape[0]
  k = min(int(budget), total - num_labeled)
  if k <= 0:
    return np.zeros(0, np.int64), 0.0
  points, real = _padded(features)
  rows = np.arange(real.size)
  labeled = rows < num_labeled
  priority = np.zeros(real.size, np.float32)
  priority[:total] = rng_.permutation(total).astype(np.float32)
  chosen, covered = probcover.greedy_cover(
      points, np.float32(delta), jax.device_put(labeled), jax.device_put(real & ~labeled),
      jax.device_put(real), jax.device_put(priority), k)
  chosen = np.asarray(jax.device_get(chosen), np.int64) - num_labeled
  return chosen, int(covered) / total


class Strategy(_self_supervised.Strategy):
  """Queries the candidates whose δ-balls cover the most uncovered points."""

  not_for_segmentation = ('it covers whole images by one self-supervised feature vector each '
                          '(balls of images), with no per-pixel notion')

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    check_settings(self.settings, self.section)

  def features_trained(self) -> None:
    """δ, chosen once from the features (the purity rule, or the setting)."""
    self.delta = purity_delta(self.features, self.data.num_classes, self.settings,
                              rng.numpy_rng(self.config.seed, 'probcover_pseudo_labels'))

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The ProbCover greedy picks among the candidates.

    Returns:
      int64 ``[min(budget, n)]``: distinct candidates, in the order picked.
    """
    labeled, rows = self.rows(ctx)
    chosen, coverage = picks(rows, labeled.size, budget, self.delta,
                             ctx.numpy_rng('probcover_order'))
    ctx.metrics['probcover_delta'] = float(self.delta)
    ctx.metrics['probcover_coverage'] = coverage
    ctx.metrics['ssl_seconds'] = float(self.ssl_seconds)
    return np.asarray(ctx.candidates, np.int64)[chosen]
