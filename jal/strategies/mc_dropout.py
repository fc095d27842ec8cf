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

The placement of the dropout (``dropout``), a choice because it decides how
well the task model trains:

- ``'network'``: the network's own dropout layers, at the positions and
  rates its architecture defines (`jal.models.Backbone.own_dropout`; the
  DBAL CNN of Gal et al. 2017, Sec. 5.1: 0.25 after the max-pool, 0.5 after
  the dense layer; ``--config.model.name=dbal_cnn``); each pass runs the
  whole network. ``dropout_rate`` is not used. Refused for a backbone
  without dropout of its own.
- ``'backbone'``: ``dropout_rate`` after the convolutions of every block of
  the backbone, as in the SCAL paper (Krishnan et al. 2021, App. A.3: p =
  0.3, T = 50); each pass runs the whole network. On a batch-normalised
  backbone this trains poorly: batch norm's statistics are gathered with
  dropout on (the "variance shift" of Li et al., CVPR 2019), and the
  network learns less from the same labels (on real MNIST, 1,000 labels,
  5 epochs, small CNN: ``experiments/README.md``).
- ``'last_layer'``: ``dropout_rate`` only on the features before the
  classifier; the backbone runs once per chunk and only the classifier is
  sampled ``T`` times, so a query costs about one forward pass. It trains
  like the network without dropout; its posterior is coarser (only the
  last layer is uncertain). Classification only.
- ``'auto'`` (default): ``'network'`` for a backbone with dropout of its
  own, else ``'last_layer'`` (``'backbone'`` for segmentation): the
  placement that trains well on every backbone.

``bald`` and ``dbal`` are the two scores by name, with the placement of
``dropout``; ``bald_last_layer`` and ``dbal_last_layer`` fix it to
``'last_layer'`` (`ALIASES`); ``power_bald`` is ``bald`` drawn by power
sampling (Kirsch et al. 2023's PowerBALD; ``config.strategy.sampling``). The
key ``last_layer`` of earlier versions is refused with the name of its
replacement.

Segmentation: the score of each pixel from its ``T`` samples, reduced per
image by the task (`jal.task.Task.per_image`; the mean by default), the
dropout in the backbone (the last-layer variants do not apply).

Evaluation. When the passes run the whole network (``'network'``,
``'backbone'``), the task model is evaluated by its MC predictive
distribution, ``(1/T) sum_t p_t`` over T passes (the SCAL paper credits
BALD's low calibration error to these passes, Sec. 4). With ``'backbone'``
the deterministic network (dropout off: weight scaling) is not usable:
batch norm's running statistics were gathered with dropout on, and without
it every normalised layer sees a different variance (measured in
``experiments/README.md``). The last-layer placement has no batch norm
after its dropout and is evaluated deterministically.
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
from jal.models import BACKBONES, ClassifierHead, Features, MultiHeadNet
from jal.strategies import base
from jal.train import inference

SCORES = {'bald': uncertainty.bald, 'dbal': uncertainty.predictive_entropy}
# Where the dropout goes (see the module docstring); 'auto' resolves to one of the others.
PLACEMENTS = ('auto', 'network', 'backbone', 'last_layer')
ALIASES = {
    'bald': {'score': 'bald'},
    'dbal': {'score': 'dbal'},
    'bald_last_layer': {'score': 'bald', 'dropout': 'last_layer'},
    'dbal_last_layer': {'score': 'dbal', 'dropout': 'last_layer'},
}
ALIASES['power_bald'] = {**ALIASES['bald'], 'sampling': 'power'}


def default_config() -> ml_collections.ConfigDict:
  """The SCAL paper's p = 0.3 and T = 50 (Krishnan et al. 2021, App. A.3), placed by ``'auto'``.

  Keys: ``score`` (``'bald'``, ``'dbal'``), ``dropout`` (the placement, one
  of `PLACEMENTS`), ``dropout_rate`` (p, for ``'backbone'`` and
  ``'last_layer'``), ``num_mc_samples`` (T), ``mc_batch_size`` (candidates
  per compiled call; each is run T times, so memory grows as T x this).
  ``last_layer`` is the replaced key of earlier versions, kept so that
  setting it is refused with the new name: leave it None.
  """
  return ml_collections.ConfigDict(dict(
      score='bald', dropout='auto', dropout_rate=0.3, num_mc_samples=50, mc_batch_size=64,
      last_layer=ml_collections.FieldReference(None, field_type=bool)))


def resolve_placement(settings: ml_collections.ConfigDict, backbone: str,
                      segmentation: bool, section: str = 'config.strategy.mc_dropout') -> str:
  """The placement ``settings.dropout`` resolves to on ``backbone``: ``'network'``,
  ``'backbone'`` or ``'last_layer'`` (``'auto'``: see the module docstring).

  Args:
    settings: the strategy's section (``dropout``, and ``last_layer`` unset).
    backbone: ``config.model.name``.
    segmentation: whether the task is segmentation (no ``'last_layer'``).
    section: where ``settings`` are, for the errors (BatchBALD's differ).

  Raises:
    JalError: ``dropout`` is not one of `PLACEMENTS`, ``'network'`` on a
      backbone without dropout of its own, ``last_layer`` set, or
      ``'last_layer'`` on segmentation.
  """
  if settings.get('last_layer') is not None:
    raise JalError(f'{section}.last_layer was replaced by {section}.dropout: use '
                   f'--{section}.dropout=last_layer for last_layer=True, =backbone for '
                   'last_layer=False (the old default)')
  choice = settings.dropout
  if choice not in PLACEMENTS:
    raise JalError(f'{section}.dropout={choice!r} is not a placement; use '
                   f'one of {", ".join(PLACEMENTS)}')
  own = backbone in BACKBONES and BACKBONES[backbone].own_dropout
  if choice == 'auto':
    choice = 'network' if own else 'backbone' if segmentation else 'last_layer'
  if choice == 'network' and not own:
    with_own = sorted(name for name, cls in BACKBONES.items() if cls.own_dropout)
    raise JalError(f"{section}.dropout='network': backbone {backbone!r} has no "
                   f'dropout of its own (those with: {", ".join(with_own)}); use last_layer '
                   'or backbone')
  if choice == 'last_layer' and segmentation:
    raise JalError('the last-layer placement samples dropout on the pooled features, which a '
                   f"per-pixel head does not read; use {section}.dropout=backbone (or auto) "
                   'on segmentation')
  return choice


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
                              f'{self.section}.mc_batch_size')
    model, spec = self.trainer.model, self.data.spec
    compile_chunks = lambda sample_fn, score_fn, reduce_fn: jax.jit(functools.partial(
        _score_chunk, model, spec.mean, spec.std, cfg.num_mc_samples, sample_fn, score_fn,
        reduce_fn))
    sample_fn = mc_logits_last_layer if self.last_layer else mc_logits
    self._scores = compile_chunks(sample_fn, SCORES[cfg.score], self.task.per_image)
    self._predictive = compile_chunks(mc_logits, uncertainty.log_mean_probabilities,
                                      lambda x: x)

  @property
  def placement(self) -> str:
    """Where the dropout is: ``'network'``, ``'backbone'`` or ``'last_layer'``
    (`resolve_placement`).

    Raises:
      JalError: a bad ``dropout`` setting for this backbone and task.
    """
    try:
      return resolve_placement(self.settings, self.config.model.name,
                               self.task.kind == 'segmentation', self.section)
    except JalError as e:
      raise JalError(f'{self.config.strategy.name}: {e}') from None

  @property
  def last_layer(self) -> bool:
    """Whether only the classifier is sampled (the backbone runs once per chunk)."""
    return self.placement == 'last_layer'

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    if not 0.0 < cfg.dropout_rate < 1.0 or cfg.num_mc_samples < 2 or cfg.mc_batch_size < 1:
      raise JalError(f'{self.config.strategy.name}: {self.section}.dropout_rate='
                     f'{cfg.dropout_rate} must be in (0, 1), num_mc_samples='
                     f'{cfg.num_mc_samples} at least 2 and mc_batch_size={cfg.mc_batch_size} '
                     'at least 1')
    where = self.placement
    if where == 'last_layer':
      model = MultiHeadNet(self.backbone(), {'classifier': ClassifierHead(
          self.task.num_classes, dropout_rate=cfg.dropout_rate)})
    elif where == 'backbone':
      model = MultiHeadNet(self.backbone(dropout_rate=cfg.dropout_rate),
                           {'classifier': self.task.head()})
    else:  # 'network': the backbone's own dropout layers
      model = self.task_model()
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
    """The MC predictive ``log (1/T) sum_t p_t`` (passes through the whole network), else
    (last layer) the eval-mode softmax."""
    if self.last_layer:
      return super().predictive_log_probabilities(task, images, indices)
    return self._map_chunks(self._predictive, task, images, indices,
                            rng.key(self.config.seed, 'mc_evaluation'))
