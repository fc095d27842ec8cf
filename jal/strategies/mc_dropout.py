"""BALD and DBAL: MC-dropout scores (Gal & Ghahramani 2016; Gal, Islam & Ghahramani 2017).

The task model is trained with dropout (`jal.models.layers.mc_dropout`), and at query
time each candidate is passed through it ``T`` times with dropout on and batch
norm in inference mode. The ``T`` passes of a chunk of ``mc_batch_size``
candidates are one compiled call: ``jax.vmap`` of the model over ``T`` dropout
keys; the chunk's scores, not its ``T x C`` probabilities, come back. So
memory grows with ``T x mc_batch_size``, never with the pool.

The score (``score``):

- ``'bald'``: the mutual information between the label and the weights
  (Houlsby et al. 2011; Gal et al. 2017; the SCAL paper's Eq. 8),
  `jal.acquisition.uncertainty.bald`;
- ``'dbal'``: the entropy of the MC-averaged prediction (Gal et al. 2017's
  max-entropy), `jal.acquisition.uncertainty.predictive_entropy`.

The placement of the dropout (``last_layer``):

- False: after the convolutions of every block of the backbone, as in the
  SCAL paper (Krishnan et al. 2021, App. A.3: p = 0.3, T = 50); each pass
  runs the whole network.
- True: only on the features before the classifier; the backbone runs once
  per chunk and only the classifier is sampled ``T`` times, so a query
  costs about one forward pass. Cheaper, and a coarser posterior (only the
  last layer is uncertain).

``bald``, ``dbal``, ``bald_last_layer`` and ``dbal_last_layer`` are the four
combinations by name (`ALIASES`); ``power_bald`` is ``bald`` drawn by power
sampling (Kirsch et al. 2023's PowerBALD; ``config.strategy.sampling``).

Segmentation: the score of each pixel from its ``T`` samples, reduced per
image by the task (`jal.task.Task.per_image`; the mean by default), the
dropout in the backbone (the last-layer variants do not apply).

Evaluation. With dropout in the backbone, the task model is evaluated by its
MC predictive distribution, ``(1/T) sum_t p_t`` over T passes (the SCAL paper
credits BALD's low calibration error to these passes, Sec. 4).
The deterministic network (dropout off: weight scaling) is not usable here:
batch norm's running statistics were gathered with dropout on, and without it
every normalised layer sees a different variance (the "variance shift" of Li
et al., CVPR 2019; measured in ``experiments/README.md``). The last-layer
variants have no batch norm after their dropout and are evaluated
deterministically.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import rng, sharding
from jal.acquisition import uncertainty
from jal.data import augment
from jal.errors import JalError
from jal.models import ClassifierHead, Features, MultiHeadNet
from jal.strategies import base
from jal.train import inference

SCORES = {'bald': uncertainty.bald, 'dbal': uncertainty.predictive_entropy}
ALIASES = {
    'bald': {'score': 'bald', 'last_layer': False},
    'dbal': {'score': 'dbal', 'last_layer': False},
    'bald_last_layer': {'score': 'bald', 'last_layer': True},
    'dbal_last_layer': {'score': 'dbal', 'last_layer': True},
}
ALIASES['power_bald'] = {**ALIASES['bald'], 'sampling': 'power'}


def default_config() -> ml_collections.ConfigDict:
  """The SCAL paper's setting (Krishnan et al. 2021, App. A.3): p = 0.3, T = 50.

  Keys: ``score`` (``'bald'``, ``'dbal'``), ``last_layer``,
  ``dropout_rate`` (p), ``num_mc_samples`` (T), ``mc_batch_size``
  (candidates per compiled call; each is run T times, so memory grows as
  T x this).
  """
  return ml_collections.ConfigDict(dict(score='bald', last_layer=False, dropout_rate=0.3,
                                        num_mc_samples=50, mc_batch_size=64))


def mc_logits(model, variables, x: jax.Array, keys: jax.Array) -> jax.Array:
  """Classifier logits of ``T`` stochastic passes, vmapped over the dropout keys.

  Args:
    model: a `MultiHeadNet` with dropout.
    variables: its variables.
    x: float ``[B, H, W, C]``, normalised.
    keys: ``[T]`` PRNG keys, one per pass.

  Returns:
    float32 ``[B, T, C]``.
  """
  def one_pass(key):
    return model.apply(variables, x, train=False, rngs={'dropout': key})['classifier']
  return jnp.swapaxes(jax.vmap(one_pass)(keys), 0, 1)


def mc_logits_last_layer(model, variables, x: jax.Array, keys: jax.Array) -> jax.Array:
  """`mc_logits` with dropout only before the classifier: features computed once.

  Args: as `mc_logits`; ``model.heads['classifier']`` has the dropout.

  Returns:
    float32 ``[B, T, C]``.
  """
  features = Features(pooled=model.apply(variables, x, train=False)['features'], blocks=())
  head = model.heads['classifier']
  head_variables = {'params': variables['params']['heads_classifier']}

  def one_pass(key):
    return head.apply(head_variables, features, rngs={'dropout': key})
  return jnp.swapaxes(jax.vmap(one_pass)(keys), 0, 1)


def per_pixel(score_fn, logits: jax.Array) -> jax.Array:
  """``score_fn`` of ``T`` samples ``[B, T, C]``, applied to each pixel of ``[B, T, H, W, C]``.

  Returns ``[B, H, W, ...]`` (the score's trailing axes); for ``[B, T, C]``
  logits, ``score_fn(logits)``.
  """
  if logits.ndim == 3:
    return score_fn(logits)
  b, t, k = logits.shape[0], logits.shape[1], logits.shape[-1]
  spatial = logits.shape[2:-1]
  out = score_fn(jnp.moveaxis(logits, 1, -2).reshape(-1, t, k))
  return out.reshape(b, *spatial, *out.shape[1:])


def _score_chunk(model, mean, std, num_samples, sample_fn, score_fn, reduce_fn, variables, images,
                 key, idx):
  """Scores of the chunk ``images[idx]``: ``score_fn`` of ``T`` sampled logits (per pixel
  for segmentation, then ``reduce_fn``).

  The chunk's keys fold in its first index, so chunks draw different masks.
  """
  x = augment.normalize(images[idx], mean, std)
  keys = jax.random.split(jax.random.fold_in(key, idx[0]), num_samples)
  return reduce_fn(per_pixel(score_fn, sample_fn(model, variables, x, keys)))


class Strategy(base.Strategy):
  """Queries the candidates with the highest ``score`` of T MC-dropout passes."""

  ranks_by_score = True

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    self.check_choice('score', SCORES)
    sharding.check_batch_size(cfg.mc_batch_size, self.mesh,
                              'config.strategy.mc_dropout.mc_batch_size')
    model, spec = self.trainer.model, self.data.spec
    compile_chunks = lambda sample_fn, score_fn, reduce_fn: jax.jit(functools.partial(
        _score_chunk, model, spec.mean, spec.std, cfg.num_mc_samples, sample_fn, score_fn,
        reduce_fn))
    sample_fn = mc_logits_last_layer if cfg.last_layer else mc_logits
    self._scores = compile_chunks(sample_fn, SCORES[cfg.score], self.task.per_image)
    self._predictive = compile_chunks(mc_logits, uncertainty.log_mean_probabilities,
                                      lambda x: x)

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    if not 0.0 < cfg.dropout_rate < 1.0 or cfg.num_mc_samples < 2 or cfg.mc_batch_size < 1:
      raise JalError(f'{self.config.strategy.name}: config.strategy.mc_dropout.dropout_rate='
                     f'{cfg.dropout_rate} must be in (0, 1), num_mc_samples='
                     f'{cfg.num_mc_samples} at least 2 and mc_batch_size={cfg.mc_batch_size} '
                     'at least 1')
    if cfg.last_layer and self.task.kind == 'segmentation':
      raise JalError(f'{self.config.strategy.name}: the last-layer variant samples dropout on '
                     'the pooled features, which a per-pixel head does not read; use bald or '
                     'dbal on segmentation')
    if cfg.last_layer:
      model = MultiHeadNet(self.backbone(), {'classifier': ClassifierHead(
          self.task.num_classes, dropout_rate=cfg.dropout_rate)})
    else:
      model = MultiHeadNet(self.backbone(dropout_rate=cfg.dropout_rate),
                           {'classifier': self.task.head()})
    return base.TaskSpec(model, self.task.loss)

  def _map_chunks(self, compiled, task, images, indices, key):
    """A compiled chunk function over ``images[indices]`` in chunks of ``mc_batch_size``."""
    return inference.map_batches(compiled, (task.variables, images, key), indices,
                                 self.settings.mc_batch_size, self.trainer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = self._map_chunks(self._scores, ctx.task, ctx.images, ctx.candidates,
                              ctx.key('mc_dropout'))
    return self.select_by_score(ctx, scores, budget)

  def score_minimum(self) -> float:
    """0: BALD and the entropy are non-negative."""
    return 0.0

  def predictive_log_probabilities(self, task: base.TaskModel, images: jax.Array,
                                   indices: np.ndarray) -> np.ndarray:
    """The MC predictive ``log (1/T) sum_t p_t`` (full dropout), else the eval-mode softmax."""
    if self.settings.last_layer:
      return super().predictive_log_probabilities(task, images, indices)
    return self._map_chunks(self._predictive, task, images, indices,
                            rng.key(self.config.seed, 'mc_evaluation'))
