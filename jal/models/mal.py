"""MAL's cosine classifier C and discriminator D (paper 003).

Ebrahimi, Gan, Salahi & Darrell, "Minimax Active Learning": an encoder F
(the backbone), a cosine-similarity classifier C on its ℓ2-normalised
features, trained to maximise the prediction entropy of unlabeled examples
while F minimises it (`jal.adversarial.gradient_reversal`,
`jal.adversarial.minimax_entropy`), and a discriminator D that predicts
labeledness from F's features. Both modules take a `Features` or its pooled
``[B, D]`` array, so they can be heads of `MultiHeadNet`.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.adversarial import gradient_reversal
from jal.models.features import Features
from jal.models.vae import HE_NORMAL

# Like torch.nn.functional.normalize: a zero vector stays zero, with a finite
# gradient.
_NORM_EPS = 1e-12


def _pooled(features: Features | jax.Array) -> jax.Array:
  x = features.pooled if isinstance(features, Features) else features
  return jnp.asarray(x).astype(jnp.float32)


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / max(||x||_2, 1e-12)`` along ``axis``, NaN-free at ``x = 0``."""
  squared = jnp.sum(jnp.square(x), axis=axis, keepdims=True)
  return x * jax.lax.rsqrt(jnp.maximum(squared, _NORM_EPS ** 2))


class CosineClassifier(nn.Module):
  """MAL's classifier C (paper 003, Sec. 3.1, Eq. 1).

  ``logits = W^T f / (||f|| T)``: the features are ℓ2-normalised, multiplied
  by the prototype matrix ``W`` (``[D, K]``, no bias) and divided by the
  temperature ``T``; the softmax of the logits is Eq. 1's ``p``. As in Eq. 1
  only the features are normalised, not the columns of ``W`` (nor does MME,
  Saito et al. ICCV 2019, which MAL follows for C, normalise them in the
  forward pass); so a logit is ``||w_k|| cos(w_k, f) / T``.
  ``normalize_weights=True`` also normalises each column ``w_k`` (Chen et al.
  ICLR 2019's Baseline++, MAL's ref. [8]): logits are then exactly cosines
  over ``T``.

  ``hidden``: MAL's appendix (App. B) gives C 156.93K parameters with
  ResNet-18 on CIFAR-100, which is exactly a fully connected layer 512 -> 256
  with bias before the prototypes (131,328 + 256 x 100 = 156,928): the
  structure of MME's ``Predictor_deep``, where the normalised vector is that
  layer's output. Eq. 1 has no such layer; ``hidden=None`` (default) is Eq. 1
  as written, ``hidden=256`` the appendix's C.

  Attributes:
    num_classes: ``K``.
    temperature: ``T`` > 0. MAL does not give its value; the default 0.05 is
      MME's.
    normalize_weights: also ℓ2-normalise the columns of ``W`` (default False,
      as in Eq. 1).
    hidden: units of a fully connected layer (with bias, no activation)
      before the normalisation; None: none.
  """

  num_classes: int
  temperature: float = 0.05
  normalize_weights: bool = False
  hidden: int | None = None

  @nn.compact
  def __call__(self, features: Features | jax.Array, train: bool = False,
               reverse_gradient: float | jax.Array | None = None) -> jax.Array:
    """Computes class logits.

    Args:
      features: a backbone's `Features` (reads ``pooled``) or float features
        ``[B, D]``.
      train: unused (every head takes it).
      reverse_gradient: if given, the features pass through a gradient
        reversal layer of this weight first (`jal.adversarial.gradient_reversal`):
        MAL's minimax entropy puts it between F and C (Sec. 3.1).

    Returns:
      float32 logits ``[B, num_classes]``; without ``hidden``, invariant to
      scaling the features by any positive constant.
    """
    del train
    f = _pooled(features)
    if reverse_gradient is not None:
      f = gradient_reversal(f, reverse_gradient)
    if self.hidden is not None:
      f = nn.Dense(self.hidden, name='hidden')(f)
    f = l2_normalize(f)
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (f.shape[-1], self.num_classes),
                        jnp.float32)
    if self.normalize_weights:
      kernel = l2_normalize(kernel, axis=0)
    return f @ kernel / self.temperature


class MLPDiscriminator(nn.Module):
  """MAL's discriminator D (paper 003, Sec. 4.1: "a 3-layer MLP with ReLU").

  Linear(D, width)-ReLU-Linear(width, width)-ReLU-Linear(width, 1). The width
  follows from the paper's parameter count (App. B: D has 525.83K parameters
  with ResNet-18, ``D = 512``: three layers with ``width = 512`` have
  525,825). Weights He-normal, biases zero (as VAAL's discriminator, by the
  same group). It returns the logit; ``sigmoid(logit)`` is the probability
  that the example is labeled (trained with BCE, 1 = labeled, Eq. 3).

  Which features D reads is the strategy's choice: Eq. 3 (garbled in the
  text) suggests F's ℓ2-normalised features, scaled by ``1 / T``.

  Attributes:
    width: units of the two hidden layers.
  """

  width: int = 512

  @nn.compact
  def __call__(self, features: Features | jax.Array, train: bool = False,
               stop_gradient: jax.Array | bool = False) -> jax.Array:
    """Scores examples.

    Args:
      features: a backbone's `Features` (reads ``pooled``) or float features
        ``[B, D]``.
      train: unused.
      stop_gradient: bool scalar (may be traced); when true no gradient flows
        from D into the features. MAL's Algorithm 1 (line 11) updates only D
        with D's loss, so a `MultiHeadNet` with D as a head should pass it.

    Returns:
      float32 logits ``[B]``.
    """
    del train
    x = _pooled(features)
    x = jnp.where(stop_gradient, jax.lax.stop_gradient(x), x)
    for index in range(2):
      x = nn.relu(nn.Dense(self.width, kernel_init=HE_NORMAL, name=f'fc{index + 1}')(x))
    return nn.Dense(1, kernel_init=HE_NORMAL, name='out')(x)[:, 0]
