"""MC-dropout scoring shared by BALD and DBAL (Gal & Ghahramani 2016; Gal et al. 2017).

The task model is trained with dropout (`jal.models.dropout`), and at query
time each candidate is passed through it ``T`` times with dropout on and batch
norm in inference mode. The ``T`` passes of a chunk of ``mc_batch_size``
candidates are one compiled call: ``jax.vmap`` of the model over ``T`` dropout
keys; the chunk's scores, not its ``T x C`` probabilities, come back. So
memory grows with ``T x mc_batch_size``, never with the pool.

Two placements of the dropout:

- full (``bald``, ``dbal``): after the convolutions of every block of the
  backbone, as in the SCAL paper (paper 002, App. A.3: p = 0.3, T = 50); each
  pass runs the whole network.
- last layer (``bald_last_layer``, ``dbal_last_layer``): only on the features
  before the classifier; the backbone runs once per chunk and only the
  classifier is sampled ``T`` times, so a query costs about one forward pass.
  Cheaper, and a coarser posterior (only the last layer is uncertain).

Evaluation. With dropout in the backbone, the task model is evaluated by its
MC predictive distribution, ``(1/T) sum_t p_t`` over T passes (the SCAL paper
credits BALD's low calibration error to these passes, paper 002, Sec. 4).
The deterministic network (dropout off: weight scaling) is not usable here:
batch norm's running statistics were gathered with dropout on, and without it
every normalised layer sees a different variance (the "variance shift" of Li
et al., CVPR 2019). On CIFAR-10 runlocal (small CNN, 6 dropout layers) the
deterministic network scored 17-21% test accuracy where its MC prediction
scores far higher. The last-layer variants have no batch norm after their
dropout and are evaluated deterministically.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jal import augment, inference, rng, selection, sharding
from jal.acquisition import uncertainty
from jal.errors import JalError
from jal.models import ClassifierHead, Features, MultiHeadNet
from jal.strategies import base


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


def _score_chunk(model, mean, std, num_samples, sample_fn, score_fn, variables, images, key,
                 idx):
  """Scores of the chunk ``images[idx]``: ``score_fn`` of ``T`` sampled logits.

  The chunk's keys fold in its first index, so chunks draw different masks.
  """
  x = augment.normalize(images[idx], mean, std)
  keys = jax.random.split(jax.random.fold_in(key, idx[0]), num_samples)
  return score_fn(sample_fn(model, variables, x, keys))


class MCDropoutStrategy(base.Strategy):
  """Queries the candidates with the highest ``score_samples`` of T MC-dropout passes.

  Subclasses set ``score_samples`` (logits ``[B, T, C]`` -> scores ``[B]``) and
  ``last_layer``. Config (``config.strategy``): ``dropout_rate`` (p),
  ``num_mc_samples`` (T), ``mc_batch_size`` (candidates per compiled call).
  """

  score_samples = None
  last_layer = False

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if not 0.0 < cfg.dropout_rate < 1.0 or cfg.num_mc_samples < 2 or cfg.mc_batch_size < 1:
      raise JalError(f'{cfg.name}: config.strategy.dropout_rate={cfg.dropout_rate} must be in '
                     f'(0, 1), num_mc_samples={cfg.num_mc_samples} at least 2 and '
                     f'mc_batch_size={cfg.mc_batch_size} at least 1')
    sharding.check_batch_size(cfg.mc_batch_size, mesh, 'config.strategy.mc_batch_size')
    self._compiled = {}

  def task_model(self, num_classes: int) -> MultiHeadNet:
    rate = self.strategy_config.dropout_rate
    if self.last_layer:
      return MultiHeadNet(self.task_backbone(),
                          {'classifier': ClassifierHead(num_classes, dropout_rate=rate)})
    return MultiHeadNet(self.task_backbone(dropout_rate=rate), self.task_heads(num_classes))

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    scores = self._map_chunks(
        'score', mc_logits_last_layer if self.last_layer else mc_logits,
        type(self).score_samples, ctx.task, ctx.images, ctx.candidates, ctx.key('mc_dropout'))
    return selection.top_k(scores, ctx.candidates, budget)

  def _map_chunks(self, name, sample_fn, score_fn, task, images, indices, key):
    """``score_fn`` of T sampled logits over ``images[indices]``, in chunks of
    ``mc_batch_size``; the function ``name`` is compiled once and reused every round."""
    cfg = self.strategy_config
    trainer = task.trainer
    if name not in self._compiled:
      self._compiled[name] = jax.jit(functools.partial(
          _score_chunk, trainer.model, trainer.mean, trainer.std, cfg.num_mc_samples,
          sample_fn, score_fn))
    return inference.map_batches(self._compiled[name], (task.variables, images, key), indices,
                                 cfg.mc_batch_size, trainer.batch_sharding)

  def predictive_log_probabilities(self, task: base.TaskModel, images: jax.Array,
                                   indices: np.ndarray) -> np.ndarray:
    """The MC predictive ``log (1/T) sum_t p_t`` (full dropout), else the eval-mode softmax."""
    if self.last_layer:
      return super().predictive_log_probabilities(task, images, indices)
    return self._map_chunks('predictive', mc_logits, uncertainty.log_mean_probabilities, task,
                            images, indices, rng.key(self.config.seed, 'mc_evaluation'))
