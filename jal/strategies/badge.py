"""BADGE: k-means++ seeding of hallucinated gradients (Ash et al., ICLR 2020).

"Deep Batch Active Learning by Diverse, Uncertain Gradient Lower Bounds"
embeds each candidate as the gradient of the cross-entropy loss at the
model's own predicted label with respect to the last linear layer's weights,
``g_x = (p(x) - e_{y_hat}) ⊗ h(x)`` (softmax ``p``, penultimate features
``h``), and queries the k-means++ seeds of those embeddings: a large
``|g_x|`` means an uncertain prediction, the D² sampling makes the batch
diverse, and there is no hyperparameter to trade the two. The seeding runs
on the device, `jal.acquisition.badge.kmeans_pp_seeding`, in O(n (C + d))
memory: the ``[n, C d]`` embeddings are never formed.

The embedding is the exact last-layer gradient when the classifier is a
linear layer on ``outputs['features']``: the task's head for classification
(`jal.models.ClassifierHead`, a Dense layer on the pooled features; its bias
gradient, ``p - e_{y_hat}``, is left out, as in the paper). `Strategy`
refuses another head (MAL's cosine classifier normalises the features
first, so ``h`` would not be its input).

Setting ``first_center``: ``'largest_norm'`` (default, the authors' code)
or ``'uniform'`` (k-means++ as Arthur & Vassilvitskii 2007 seed it).
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import sharding
from jal.acquisition import badge
from jal.errors import JalError
from jal.models import ClassifierHead
from jal.strategies import _features, base


def default_config() -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(first_center='largest_norm'))


def probabilities_and_features(outputs: dict[str, jax.Array]) -> tuple[jax.Array, jax.Array]:
  """float32 ``[B, C]`` softmax of the ``'classifier'`` logits and float32 ``[B, d]`` features."""
  return (jax.nn.softmax(outputs['classifier'].astype(jnp.float32), axis=-1),
          outputs['features'].astype(jnp.float32))


class Strategy(base.Strategy):
  """Queries the k-means++ seeds of the candidates' gradient embeddings."""

  not_for_segmentation = ('its gradient embedding is that of one class per image; a per-pixel '
                          'head has no single last-layer gradient per image in the paper')

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.check_choice('first_center', badge.FIRST_CENTER)
    head = self.trainer.model.heads['classifier']
    if type(head) is not ClassifierHead:  # pylint: disable=unidiomatic-typecheck
      raise JalError(f'badge: the gradient embedding needs a linear classifier on the features '
                     f'(ClassifierHead); the task model has {type(head).__name__}')

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    """The first ``min(budget, n)`` k-means++ seeds among the candidates.

    Sets ``ctx.scores`` to each pick's gradient-embedding norm ``|g_x|``
    (the paper's uncertainty: a lower bound on the gradient norm whatever
    the label); the order is the seeding's, not by that score.

    Returns:
      int64 ``[min(budget, n)]``: distinct candidates, in the order picked.

    Raises:
      JalError: if a probability or feature is NaN or infinite (a diverged
        task model).
    """
    k = min(budget, ctx.candidates.size)
    if k == 0:
      return np.zeros(0, np.int64)
    n = ctx.candidates.size
    # On the device, rows padded to a size bucket (the seeding compiles a few times a run).
    probs, feats = _features.device_pass(ctx, ctx.candidates, probabilities_and_features)
    count = jax.device_put(np.int32(n), sharding.replicated(ctx.mesh))
    if not bool(_all_finite(probs, feats, count)):
      raise JalError('badge: a softmax probability or penultimate feature of the task model is NaN '
                     'or infinite; lower config.train.learning_rate')
    picks = badge.kmeans_pp_seeding(probs, feats, k, ctx.key('badge'), count,
                                    first=self.settings.first_center)
    picks, norms = jax.device_get((picks, _norms_at(probs, feats, picks)))
    ctx.scores = norms.astype(np.float64)
    return np.asarray(ctx.candidates, np.int64)[picks]


@jax.jit
def _all_finite(probs, feats, n):
  """Whether the real rows (``[:n]``) are finite (padding is zeros)."""
  padding = jnp.arange(probs.shape[0]) >= n
  return jnp.all((jnp.isfinite(probs).all(axis=1) & jnp.isfinite(feats).all(axis=1)) | padding)


@jax.jit
def _norms_at(probs, feats, picks):
  """float32 ``[k]``: ``|g_x|`` of the picked rows."""
  return jnp.sqrt(badge.sq_norms(badge.gradient_factors(probs[picks]), feats[picks]))
