"""The base of the query strategies that select on self-supervised features (TypiClust, ProbCover).

The features are those of a self-supervised network trained on the whole
pool (`jal.initial_pools.self_supervised_features`), once per strategy
object and at its first query: building the strategy (a comparison builds
every arm to check it) trains nothing. They are deterministic from
``config.seed``, so a resumed run gets the same features.
"""

from __future__ import annotations

import time

import numpy as np

from jal import initial_pools
from jal.errors import JalError
from jal.strategies import base


def prepare(features: np.ndarray, normalize: bool) -> np.ndarray:
  """float32 features, L2-normalised by row when ``normalize`` (the authors' code).

  Raises:
    JalError: a feature is NaN or infinite (a diverged self-supervised network).
  """
  features = np.asarray(features, np.float32)
  if not np.isfinite(features).all():
    raise JalError('a self-supervised feature is NaN or infinite; lower the learning rate '
                   'of config.initial_pool (ssl_train, simclr_train or vae_train)')
  if normalize:
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
  return features


class Strategy(base.Strategy):
  """A strategy whose settings hold ``features`` and ``normalize``; see the module docstring.

  Attributes:
    features: float32 ``[N, D]``, the pool's prepared features (None before
      the first query).
    ssl_seconds: the network's training time, reported with every query.
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.features = None
    self.ssl_seconds = 0.0

  def train_features(self) -> None:
    """Trains the network and prepares the features, unless done already."""
    if self.features is not None:
      return
    start = time.perf_counter()
    features = initial_pools.self_supervised_features(self.config, self.data, self.mesh,
                                                      self.settings.features)
    self.ssl_seconds = time.perf_counter() - start
    self.features = prepare(features, bool(self.settings.normalize))
    self.features_trained()

  def features_trained(self) -> None:
    """What a strategy derives from the features once (ProbCover: its δ)."""

  def rows(self, ctx: base.RoundContext) -> tuple[np.ndarray, np.ndarray]:
    """``(labeled pool's indices, features of the labeled pool then the candidates)``,
    training the network first if needed."""
    self.train_features()
    labeled = np.asarray(ctx.pool.labeled, np.int64)
    return labeled, self.features[np.concatenate([labeled, ctx.candidates]).astype(np.int64)]
