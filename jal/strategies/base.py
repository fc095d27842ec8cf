"""The strategy interface: the unit of extension of jal.

A strategy decides which unlabeled examples to query. The methods of the
catalogue fall in three kinds, and each is written against the same three
hooks, with no special case in the experiment loop:

1. Strategies that only score with the task model (entropy, least confidence,
   margin, BALD, CoreSet, FeatureSim, DFM) implement `query` alone and call
   ``ctx.task.predict`` with a function of the task model's outputs.
2. Strategies that change the task model or how it is trained (Learning
   Loss, TA-VAAL's ranker, SCAL, MAL, MC dropout, ensembles) also override
   `task_heads` (extra heads on the task model's backbone, e.g. a
   loss-prediction module or a projection head), `task_model` (the whole
   network: dropout in the backbone, M vmapped members) and `task_loss` (the
   training objective, which sees every head's output).
   A strategy that needs a different training loop altogether overrides
   `fit_task_model`.
3. Strategies that train networks of their own build them once in
   ``__init__`` (so their compiled steps are reused every round) and train
   them inside `query` (PAL's scoring network), or, when the networks learn
   together with the task model or before it, inside `fit_task_model`
   (VAAL's and TA-VAAL's VAE and discriminator, MAL's encoder, classifier
   and discriminator: `jal.two_pool`).

A strategy object lives for the whole experiment. It must keep no state that
the next round depends on other than what the loop checkpoints (the pool),
so that a resumed run is identical to an uninterrupted one. (Networks trained
in `fit_task_model` and read by the same round's `query` are such state
within a round; a resumed round trains them again.)
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import rng, selection, training
from jal.data import Dataset
from jal.models import ClassifierHead, MultiHeadNet, get_backbone
from jal.pool import Pool


def log_probabilities(outputs: dict[str, jax.Array]) -> jax.Array:
  """float32 ``[B, C]``: the log-softmax of the ``'classifier'`` logits."""
  return jax.nn.log_softmax(outputs['classifier'].astype(jnp.float32), axis=-1)


@dataclasses.dataclass
class TaskModel:
  """The trained task model of a round: its trainer and its variables."""
  trainer: training.Trainer
  variables: Any
  batch_size: int

  def predict(self, images: jax.Array, indices: np.ndarray, fn) -> Any:
    """``fn`` of the model's eval-mode outputs over ``images[indices]`` (NumPy)."""
    return self.trainer.predict(self.variables, images, indices, fn, self.batch_size)


@dataclasses.dataclass
class RoundContext:
  """What a strategy may look at when it queries.

  Attributes:
    config: the experiment config.
    dataset: the host-side dataset (true labels are the oracle's secret: a
      strategy must not read ``dataset.train_labels``).
    round: the round number (0 for the round trained on the initial pool).
    pool: the labeled / unlabeled pools.
    images: uint8 device array ``[N, H, W, C]``, the train split.
    labels: int32 device array ``[N]``, oracle labels, -1 where unlabeled.
    candidates: int64 ``[n]``: the unlabeled indices the query may choose from
      (all of them, or a random subset: ``config.candidate_subset``).
    task: the task model trained this round.
    mesh: the device mesh.
    metrics: what the query measured, for ``results.jsonl``
      (``record['query_metrics']``): a strategy that trains networks of its
      own writes their diagnostics here (e.g. the discriminator's mean output
      on each pool), float values only.
  """
  config: ml_collections.ConfigDict
  dataset: Dataset
  round: int
  pool: Pool
  images: jax.Array
  labels: jax.Array
  candidates: np.ndarray
  task: TaskModel
  mesh: jax.sharding.Mesh
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)

  def key(self, purpose: str, *indices: int) -> jax.Array:
    """A PRNG key for ``purpose`` in this round."""
    return rng.key(self.config.seed, purpose, self.round, *indices)

  def numpy_rng(self, purpose: str, *indices: int) -> np.random.Generator:
    """A NumPy generator for ``purpose`` in this round."""
    return rng.numpy_rng(self.config.seed, purpose, self.round, *indices)


class Strategy:
  """Base class; see the module docstring for which hooks each kind overrides."""

  def __init__(self, config: ml_collections.ConfigDict, dataset: Dataset,
               mesh: jax.sharding.Mesh):
    self.config = config
    self.strategy_config = config.strategy
    self.dataset = dataset
    self.mesh = mesh

  def task_heads(self, num_classes: int) -> dict[str, Any]:
    """The heads on the task model's backbone; must include ``'classifier'``."""
    return {'classifier': ClassifierHead(num_classes)}

  def task_backbone(self, dropout_rate: float = 0.0) -> nn.Module:
    """The backbone of ``config.model`` (name, width, compute dtype)."""
    cfg = self.config.model
    return get_backbone(cfg.name, width=cfg.get('width'), dtype=cfg.get('dtype', 'float32'),
                        dropout_rate=dropout_rate)

  def task_model(self, num_classes: int) -> nn.Module:
    """The task model: `task_backbone` with `task_heads`.

    Called as ``model.apply(variables, x, train=...)`` it returns a dict with
    at least ``'classifier'`` (float32 logits ``[B, num_classes]``, what the
    loop evaluates) and ``'features'``.
    """
    return MultiHeadNet(self.task_backbone(), self.task_heads(num_classes))

  task_loss = staticmethod(training.cross_entropy_loss)
  # Top-level task-model parameters frozen after a fraction of the epochs
  # (`jal.training.Trainer.freeze_after`), e.g. TA-VAAL's ranker.
  task_freeze_after: dict[str, float] | None = None
  # Augmented views of each image per train step (`jal.training.Trainer.views`):
  # 2 for SCAL's supervised contrastive loss.
  task_views: int = 1

  def fit_task_model(self, trainer: training.Trainer, state: training.TrainState,
                     images: jax.Array, labels: jax.Array, pool: Pool, *, epochs: int,
                     key: jax.Array, description: str):
    """Trains the task model on the labeled pool; returns ``(state, metrics)``."""
    return training.fit(trainer, state, images, labels, pool.labeled, epochs=epochs, key=key,
                        description=description)

  def query(self, ctx: RoundContext, budget: int) -> np.ndarray:
    """Returns ``min(budget, len(ctx.candidates))`` distinct indices from the candidates."""
    raise NotImplementedError

  def predictive_log_probabilities(self, task: TaskModel, images: jax.Array,
                                   indices: np.ndarray) -> np.ndarray:
    """float32 ``[n, C]``: ``log p(y | x)`` of the trained task model over ``images[indices]``.

    What the loop evaluates (accuracy, NLL). By default the eval-mode
    classifier's softmax; a model whose prediction is an average (MC dropout)
    overrides it.
    """
    return task.predict(images, indices, log_probabilities)


class TaskScoreStrategy(Strategy):
  """Queries the candidates with the highest score of the task model's outputs.

  Subclasses set ``score_outputs``: a module-level function from the output
  dict to float32 scores ``[B]`` (one compilation per function).
  """

  score_outputs: Any = None

  def query(self, ctx: RoundContext, budget: int) -> np.ndarray:
    scores = ctx.task.predict(ctx.images, ctx.candidates, type(self).score_outputs)
    return selection.top_k(scores, ctx.candidates, budget)
