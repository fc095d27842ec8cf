"""The strategy interface: the unit of extension of jal.

A strategy decides which unlabeled examples to query. It is built once per
experiment (`jal.strategies.build`) and gets the pool's images without their
labels (`jal.data.PoolData`), the task (`jal.task.Task`), the device mesh
and its settings (its own section of ``config.strategy``). The loop then
asks it, every round, for three things:

- `task_spec`, once: the task model, its loss, what is frozen when and how
  many augmented views each step sees. The base class builds the task
  model's `jal.train.Trainer` from it (``self.trainer``), compiled once.
- `fit`: train the task model on the labeled pool. The default is
  `jal.train.fit`; a strategy whose own networks learn with or before the
  task model (VAAL, TA-VAAL, MAL, SCAL's two stages) overrides it and
  returns them in `Fit.aux`, which the loop hands to the same round's query
  in `RoundContext.fitted`. Nothing travels between the two as an
  attribute of the strategy.
- `query`: choose indices among ``ctx.candidates``.

The methods of the catalogue come in three kinds:

1. Score-only strategies (entropy, margin, least confidence, CoreSet,
   FeatureSim, DFM): `query` alone, with `ScoreStrategy` when the score is a
   function of the task model's outputs.
2. Strategies that change the task model or how it is trained (MC dropout,
   ensembles, Learning Loss, TA-VAAL's ranker, SCAL, MAL): `task_spec`, and
   `fit` when the training differs.
3. Strategies that train networks of their own (PAL's scoring network,
   VAAL's VAE and discriminator, MAL's discriminator): they build them and
   their compiled steps in ``__init__`` and train them in `query` or `fit`.

Stochastic batch acquisition. A strategy whose query is the top ``budget``
of one score per candidate (``ranks_by_score``: the `ScoreStrategy`s, MC
dropout, ensembles, DFM) selects through `Strategy.select_by_score`, so
``config.strategy.sampling`` may replace its top-k by a draw without
replacement that favours high scores (Kirsch et al., "Stochastic Batch
Acquisition: A Simple Baseline for Deep Active Learning", TMLR 2023;
`jal.selection.stochastic_top_k`): ``'power'`` ``p ∝ (s - s_min)^beta``,
``'softmax'`` ``p ∝ exp(beta s)``, ``'softrank'`` ``p ∝ rank^-beta``, with
``beta = config.strategy.sampling_beta``. Power needs non-negative scores:
each strategy states its score's lower bound ``s_min`` (`score_minimum`: 0
for entropy, BALD, least confidence, the variation ratio and DFM's error;
-1 for the margin score ``-(p_(1) - p_(2))``, so power draws ``∝ (1 -
margin gap)^beta``, Kirsch et al.'s PowerMargin), and refuses power if the
score has none (Learning Loss's predicted loss). The other strategies
refuse any sampling but ``'top_k'`` when they are built.

A strategy keeps no state across rounds: everything the next round depends
on is in the pool, which the loop checkpoints, so a resumed run is identical
to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import rng, selection
from jal.data import PoolData
from jal.errors import JalError, check_choice
from jal.models import MultiHeadNet, get_backbone
from jal.objectives import LossFn
from jal.pool import Pool
from jal.task import Task
from jal.train import Trainer, TrainState, fit


def log_probabilities(outputs: dict[str, jax.Array]) -> jax.Array:
  """float32 ``[B, C]``: the log-softmax of the ``'classifier'`` logits."""
  return jax.nn.log_softmax(outputs['classifier'].astype(jnp.float32), axis=-1)


def features(outputs: dict[str, jax.Array]) -> jax.Array:
  """float32 ``[B, D]``: the pooled features before the last fully connected layer."""
  return outputs['features']


@dataclasses.dataclass(frozen=True)
class TaskSpec:
  """How a strategy's task model is built and trained.

  Attributes:
    model: the network, called as ``model.apply(variables, x, train=...)``;
      it returns a dict with at least ``'classifier'`` (what the loop
      evaluates) and ``'features'``.
    loss: its objective (`jal.objectives.LossFn`).
    freeze_after: top-level parameter name -> fraction of the epochs after
      which it gets no update (TA-VAAL's ranker: ``{'heads_loss_prediction': 0.8}``).
    views: augmented views of each image per train step (2 for SCAL's
      supervised contrastive loss).
  """
  model: nn.Module
  loss: LossFn
  freeze_after: Mapping[str, float] = dataclasses.field(default_factory=dict)
  views: int = 1


@dataclasses.dataclass
class Fit:
  """What a round's fit returns.

  Attributes:
    state: the task model's trained `jal.train.TrainState`.
    metrics: its last epoch's metrics (and those of any network trained
      with it, prefixed), for ``results.jsonl``.
    aux: what the same round's query needs from the fit (VAAL's VAE and
      discriminator, MAL's networks); the loop hands it over as
      `RoundContext.fitted`.
  """
  state: TrainState
  metrics: dict[str, float]
  aux: Any = None


@dataclasses.dataclass
class TaskModel:
  """The trained task model of a round: its trainer and its variables."""
  trainer: Trainer
  variables: Any
  batch_size: int

  def predict(self, images: jax.Array, indices: np.ndarray, fn, on_device: bool = False) -> Any:
    """``fn`` of the model's eval-mode outputs over ``images[indices]``, as NumPy
    (``on_device``: device arrays, padded to a multiple of the batch size).

    ``fn`` compiles once per distinct function (see `jal.train.Trainer.predict`):
    pass a module-level function or a method of the strategy.
    """
    return self.trainer.predict(self.variables, images, indices, fn, self.batch_size,
                                on_device=on_device)


@dataclasses.dataclass
class RoundContext:
  """What a strategy may look at when it queries.

  Attributes:
    config: the experiment config.
    data: the pool's images and class names, without labels.
    round: the round number (0 for the round trained on the initial pool).
    pool: the labeled / unlabeled pools, with the oracle's answers.
    images: uint8 device array ``[N, H, W, C]``, the train split.
    labels: device array of the oracle's labels (`jal.task.Task.label_array`:
      int32 ``[N]``, -1 where unlabeled).
    candidates: int64 ``[n]``: the unlabeled indices the query may choose
      from (all of them, or a random subset: ``config.candidate_subset``).
    task: the task model trained this round.
    mesh: the device mesh.
    fitted: `Fit.aux` of this round's fit (None for most strategies).
    metrics: what the query measured, for ``results.jsonl``
      (``record['query_metrics']``): float values only.
    scores: set by a strategy that ranks by a score: the acquisition score
      of each queried index, float ``[budget]`` in the query's order (shown
      to a person with the query, `jal.human`); None otherwise.
  """
  config: ml_collections.ConfigDict
  data: PoolData
  round: int
  pool: Pool
  images: jax.Array
  labels: jax.Array
  candidates: np.ndarray
  task: TaskModel
  mesh: jax.sharding.Mesh
  fitted: Any = None
  metrics: dict[str, float] = dataclasses.field(default_factory=dict)
  scores: np.ndarray | None = None

  def key(self, purpose: str, *indices: int) -> jax.Array:
    """A PRNG key for ``purpose`` in this round."""
    return rng.key(self.config.seed, purpose, self.round, *indices)

  def numpy_rng(self, purpose: str, *indices: int) -> np.random.Generator:
    """A NumPy generator for ``purpose`` in this round."""
    return rng.numpy_rng(self.config.seed, purpose, self.round, *indices)


class Strategy:
  """Base class; see the module docstring.

  Args:
    config: the experiment config.
    data: the pool's images, without labels.
    task: the task.
    mesh: the device mesh.
    settings: this strategy's section of ``config.strategy`` with its
      alias's variant applied (`jal.strategies.settings`).

  Attributes:
    trainer: the task model's `jal.train.Trainer`, built from `task_spec`.
  """

  # Whether `fit` is plain `jal.train.fit` of `task_spec` (trials of a
  # comparison may then train together, vmapped).
  plain_fit = True
  # Why the strategy does not apply to segmentation (None: it does); the
  # one-line refusal names it.
  not_for_segmentation: str | None = None
  # Whether `query` ranks the candidates by one score (through `select_by_score`),
  # so that config.strategy.sampling may draw the batch instead of its top-k.
  ranks_by_score = False

  def __init__(self, config: ml_collections.ConfigDict, data: PoolData, task: Task,
               mesh: jax.sharding.Mesh, settings: ml_collections.ConfigDict):
    self.config = config
    self.data = data
    self.task = task
    self.mesh = mesh
    self.settings = settings
    if task.kind == 'segmentation' and self.not_for_segmentation:
      raise JalError(f"config.strategy.name='{config.strategy.name}' does not apply to "
                     f'segmentation: {self.not_for_segmentation}')
    self.sampling, self.sampling_beta = self._sampling()
    spec = self.task_spec()
    self.trainer = Trainer(spec.model, spec.loss, config.train, data.spec, mesh,
                           freeze_after=spec.freeze_after, views=spec.views)

  @property
  def section(self) -> str:
    """``'config.strategy.<module>'``: where this strategy's settings are, for error lines (a
    subclass in another module, BatchBALD of MC dropout, names its own section)."""
    return f"config.strategy.{type(self).__module__.rsplit('.', 1)[-1]}"

  def check_choice(self, key: str, choices) -> None:
    """Refuses ``settings[key]`` outside ``choices`` with one line naming
    ``config.strategy.<module>.<key>`` (`jal.errors.check_choice`)."""
    check_choice(self.settings[key], choices, f'{self.section}.{key}')

  def _sampling(self) -> tuple[str, float]:
    """``(config.strategy.sampling, sampling_beta)``, or the sampling an alias fixes
    (``power_bald``), checked against the strategy.

    Raises:
      JalError: an unknown sampling, one that contradicts the alias, a
        sampling other than ``'top_k'`` for a strategy that does not rank by
        one score, power for a score without a lower bound, or a negative beta.
    """
    name = self.config.strategy.name
    sampling = self.config.strategy.get('sampling', 'top_k')
    beta = self.config.strategy.get('sampling_beta', 1.0)
    fixed = self.settings.get('sampling')
    if fixed is not None:
      if sampling not in ('top_k', fixed):
        raise JalError(f"config.strategy.name='{name}' samples with {fixed!r}, but "
                       f'config.strategy.sampling={sampling!r}; leave it at its default')
      sampling = fixed
    check_choice(sampling, ('top_k', *selection.SAMPLING), 'config.strategy.sampling')
    if sampling == 'top_k':
      return sampling, float(beta)
    if not self.ranks_by_score:
      raise JalError(f'config.strategy.sampling={sampling!r} applies to strategies that rank '
                     f"candidates by one score; {name} does not: leave it at 'top_k'")
    if not beta >= 0:
      raise JalError(f'config.strategy.sampling_beta={beta} must be non-negative (Kirsch et '
                     'al. 2023 use 1; 0 draws uniformly)')
    if sampling == 'power' and self.score_minimum() is None:
      raise JalError(f"config.strategy.sampling='power' needs a score bounded below; {name}'s "
                     "is not: use 'softmax' or 'softrank'")
    return sampling, float(beta)

  def score_minimum(self) -> float | None:
    """The lowest value the score of `select_by_score` can take (power sampling draws
    ``∝ (s - minimum)^beta``); None where it has none. Only asked when ``ranks_by_score``."""
    return None

  def select_by_score(self, ctx: RoundContext, scores: np.ndarray, budget: int,
                      tie_break: np.ndarray | None = None) -> np.ndarray:
    """The query from one score per candidate: its top ``budget``, or a draw by
    ``config.strategy.sampling`` (see the module docstring).

    Args:
      ctx: the round (its candidates, and ``ctx.numpy_rng('sampling')``, the
        draw's noise: a resumed run draws the same batch).
      scores: float ``[n]``, aligned with ``ctx.candidates``; higher is queried first.
      budget: how many (clipped to ``n``).
      tie_break: optional float ``[n]``, the secondary key of top-k (a draw
        breaks ties by its noise).

    Returns:
      int64 ``[min(budget, n)]`` distinct candidates, best (or first drawn) first.
    """
    if self.sampling == 'top_k':
      return selection.top_k(scores, ctx.candidates, budget, tie_break=tie_break)
    scores = np.asarray(scores, np.float64)
    if self.sampling == 'power':  # >= 0 up to the rounding of the score
      scores = np.maximum(scores - self.score_minimum(), 0.0)
    return selection.stochastic_top_k(scores, ctx.candidates, budget, ctx.numpy_rng('sampling'),
                                      mode=self.sampling, beta=self.sampling_beta)

  # -- the task model -----------------------------------------------------------------

  def backbone(self, dropout_rate: float = 0.0) -> nn.Module:
    """The backbone of ``config.model`` (name, width, compute dtype)."""
    cfg = self.config.model
    return get_backbone(cfg.name, width=cfg.get('width'), dtype=cfg.get('dtype', 'float32'),
                        dropout_rate=dropout_rate)

  def task_model(self, **heads: nn.Module) -> MultiHeadNet:
    """`backbone` with the task's head (``'classifier'``) and any extra ``heads``."""
    return MultiHeadNet(self.backbone(), {'classifier': self.task.head(), **heads})

  def task_spec(self) -> TaskSpec:
    """The task model and how it is trained; by default the task's head and loss."""
    return TaskSpec(self.task_model(), self.task.loss)

  def fit(self, state: TrainState, images: jax.Array, labels: jax.Array, pool: Pool, *,
          key: jax.Array, description: str) -> Fit:
    """Trains the task model on the labeled pool for ``config.train.epochs``.

    Args:
      state: the initial state (fresh, or the last round's when warm-started).
      images: uint8 device array ``[N, H, W, C]``, the train split.
      labels: the oracle's labels on the device (`RoundContext.labels`).
      pool: the pools.
      key: the fit's PRNG key.
      description: label of the progress bar.
    """
    state, metrics = fit(self.trainer, state, images, labels, pool.labeled,
                         epochs=self.config.train.epochs, key=key, description=description)
    return Fit(state, metrics)

  # -- the query ----------------------------------------------------------------------

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


class ScoreStrategy(Strategy):
  """Queries the candidates with the highest `score` of the task model's outputs.

  On segmentation a score per pixel ``[B, H, W]`` becomes one per image by
  the task's reduction (`jal.task.Task.per_image`: the mean by default).
  """

  ranks_by_score = True

  def score(self, outputs: dict[str, jax.Array]) -> jax.Array:
    """float32 ``[B]`` (or per pixel ``[B, H, W]``) scores of a batch's outputs,
    traced inside the compiled pass."""
    raise NotImplementedError

  def image_score(self, outputs: dict[str, jax.Array]) -> jax.Array:
    """float32 ``[B]``: `score` reduced per image (a stable function: compiled once)."""
    return self.task.per_image(self.score(outputs))

  def query(self, ctx: RoundContext, budget: int) -> np.ndarray:
    scores = np.asarray(ctx.task.predict(ctx.images, ctx.candidates, self.image_score))
    query = self.select_by_score(ctx, scores, budget)
    ctx.scores = scores[np.searchsorted(ctx.candidates, query)]  # candidates are sorted
    return query
