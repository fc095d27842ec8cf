"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): BALD of the batch, not of each point.

The task model is BALD's (`jal.strategies.mc_dropout`: the same dropout,
placement, T and evaluation), and the query is the greedy batch of largest
mutual information between its labels and the weights
(`jal.acquisition.batchbald`): each pick adds the candidate that adds the
most to the joint, so a batch does not pile up on near-duplicates that
top-k BALD takes together.

The joint needs the ``T`` weight samples to be the same for every
candidate ("consistent MC dropout", Kirsch et al. Sec. 4): each candidate
is passed through the network alone (a batch of one, vmapped) with the
same ``T`` dropout keys, ``ctx.key('batchbald', 0)``, for every chunk, so
sample ``t`` drops the same units of every image. (BALD's own passes draw
a mask per image and per chunk: right for a per-point score, not for a
joint.) The probabilities of all candidates, float32 ``[n, T, C]``, stay on
the device for the greedy.

Settings beyond `jal.strategies.mc_dropout`'s (``score`` must stay
``'bald'``: BALD is BatchBALD's batch of one):

- ``max_configurations`` (40,000, the paper's code): the joint of the
  chosen points is exact while it has at most this many label
  configurations (``C^(n-1)``), and beyond, this many (rounded down to a
  multiple of T) sampled configurations; time per pick grows linearly with
  it, memory is ``O(n T C + T M)``;
- ``candidates_per_pick`` (0: off): before the greedy, keep only the
  ``candidates_per_pick x budget`` candidates of highest BALD. The paper's
  code has this cull (``min_candidates_per_acquired_item = 20``) but keeps
  the whole pool by default (``min_remaining_percentage = 100``); so does jal.

Not for segmentation: the joint is over one label per image, and an
image's labels are its pixels' (``C^(H W)`` configurations per image).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import sharding
from jal.acquisition import batchbald
from jal.data import augment
from jal.errors import JalError
from jal.strategies import base, mc_dropout
from jal.train import inference


def default_config() -> ml_collections.ConfigDict:
  """`jal.strategies.mc_dropout.default_config` plus ``max_configurations`` and
  ``candidates_per_pick`` (see the module docstring)."""
  config = mc_dropout.default_config()
  config.max_configurations = batchbald.DEFAULT_MAX_CONFIGURATIONS
  config.candidates_per_pick = 0
  return config


def consistent_probabilities(model, mean, std, sample_fn, variables, images, keys, idx):
  """float32 ``[B, T, C]``: ``p(y | x, w_t)`` of the chunk ``images[idx]``, with the same
  ``T`` dropout masks for every image (each image a batch of one under the same keys)."""
  x = augment.normalize(images[idx], mean, std)
  one = lambda image: sample_fn(model, variables, image[None], keys)[0]  # [T, C]
  return jax.nn.softmax(jax.vmap(one)(x).astype(jnp.float32), axis=-1)


class Strategy(mc_dropout.Strategy):
  """Queries the greedy BatchBALD batch of T consistent MC-dropout passes."""

  ranks_by_score = False  # the greedy batch, not one score per candidate
  not_for_segmentation = ("its joint entropy is over one label per image; an image's pixels "
                          'would make C^(H W) label configurations')

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    if cfg.score != 'bald':
      raise JalError(f"config.strategy.batchbald.score={cfg.score!r} must be 'bald': BatchBALD "
                     'is the mutual information of the batch, BALD its batch of one')
    if cfg.max_configurations < cfg.num_mc_samples or cfg.candidates_per_pick < 0:
      raise JalError(f'config.strategy.batchbald.max_configurations={cfg.max_configurations} '
                     f'must be at least num_mc_samples={cfg.num_mc_samples} and '
                     f'candidates_per_pick={cfg.candidates_per_pick} non-negative')
    sample_fn = mc_dropout.mc_logits_last_layer if self.last_layer else mc_dropout.mc_logits
    spec = self.data.spec
    self._probabilities = jax.jit(functools.partial(
        consistent_probabilities, self.trainer.model, spec.mean, spec.std, sample_fn))

  def probabilities(self, ctx: base.RoundContext, indices: np.ndarray) -> jax.Array:
    """float32 ``[n', T, C]`` on the device (``n' >= n``: rows from ``n`` on are padding)."""
    keys = jax.random.split(ctx.key('batchbald', 0), self.settings.num_mc_samples)
    probs = inference.map_batches(self._probabilities, (ctx.task.variables, ctx.images, keys),
                                  indices, self.settings.mc_batch_size,
                                  self.trainer.batch_sharding, on_device=True)
    if isinstance(probs, np.ndarray):  # several processes: gathered to the host
      probs = jax.device_put(probs, sharding.replicated(ctx.mesh))
    return probs

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The greedy BatchBALD batch, in the order picked.

    Records ``ctx.scores`` (each pick's gain in ``a``, nats) and
    ``ctx.metrics['batchbald']`` (``a`` of the whole batch).
    """
    cfg = self.settings
    n = ctx.candidates.size
    k = min(budget, n)
    if k == 0:
      return np.zeros(0, np.int64)
    probs = self.probabilities(ctx, ctx.candidates)
    positions = np.arange(n)
    if cfg.candidates_per_pick and cfg.candidates_per_pick * k < n:
      bald = np.asarray(jax.device_get(_bald(probs)))[:n]
      keep = np.sort(np.argsort(-bald, kind='stable')[:cfg.candidates_per_pick * k])
      probs, positions = _rows(probs, jax.device_put(keep)), keep
    picks, values = batchbald.batchbald(probs, k, ctx.key('batchbald', 1),
                                        cfg.max_configurations, num_candidates=positions.size)
    ctx.scores = np.diff(values, prepend=np.float32(0.0))
    ctx.metrics['batchbald'] = float(values[-1])
    return np.asarray(ctx.candidates, np.int64)[positions[picks]]


_bald = jax.jit(batchbald.bald_scores)
_rows = jax.jit(lambda x, rows: x[rows])
