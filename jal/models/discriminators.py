"""The labeledness discriminators: VAAL's ``D(z)`` (TA-VAAL's ``D(r, z)``) and MAL's ``D(F(x))``.

Each returns a logit per example; ``sigmoid(logit)`` is the probability that
the example is labeled (trained with binary cross-entropy, 1 = labeled:
`jal.objectives.adversarial.discriminator_loss`). Weights are He-normal and
biases zero, as in VAAL's reference code (Sinha et al. 2019), which MAL's
authors (Ebrahimi et al. 2020) share.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.models.features import Features
from jal.models.layers import HE_NORMAL, concat_condition


class LatentDiscriminator(nn.Module):
  """VAAL's discriminator on the latent code, ``D(z)``, or TA-VAAL's ``D(r, z)``.

  An MLP: ``num_hidden`` layers of ``width`` units with ReLU, then one output
  unit. The default (two hidden layers of 512: Linear(z, 512)-ReLU-
  Linear(512, 512)-ReLU-Linear(512, 1)) is VAAL's current reference code
  (``model.py``); an earlier version of that file had four hidden layers,
  which is the "5-layer MLP" TA-VAAL's paper (Sec. 4.1) reports (its public
  code has two): use ``num_hidden=4`` for that. The reference ends with a
  sigmoid; this returns the logit, and the losses in `jal.adversarial` apply
  the sigmoid stably. ``D -> 1`` means labeled.

  Attributes:
    width: units of each hidden layer (512 in VAAL).
    num_hidden: number of hidden layers.
  """

  width: int = 512
  num_hidden: int = 2

  @nn.compact
  def __call__(self, z: jax.Array, condition: jax.Array | None = None) -> jax.Array:
    """Scores latents.

    Args:
      z: float ``[B, z_dim]`` (VAAL and TA-VAAL feed the posterior mean ``mu``).
      condition: optional float ``[B, k]`` (TA-VAAL: the normalised rank
        ``r``), concatenated after ``z`` (TA-VAAL Eq. 3). Give it at ``init``
        too.

    Returns:
      float32 logits ``[B]``; ``sigmoid(logit)`` is the probability that the
      example is labeled.

    Raises:
      JalError: ``condition`` is not ``[B, k]``.
    """
    x = concat_condition(jnp.asarray(z, jnp.float32), condition)
    for index in range(self.num_hidden):
      x = nn.relu(nn.Dense(self.width, kernel_init=HE_NORMAL, name=f'fc{index + 1}')(x))
    return nn.Dense(1, kernel_init=HE_NORMAL, name='out')(x)[:, 0]


class MLPDiscriminator(nn.Module):
  """MAL's discriminator D (Ebrahimi et al. 2020, Sec. 4.1: "a 3-layer MLP with ReLU").

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
    x = features.pooled if isinstance(features, Features) else features
    x = jnp.asarray(x).astype(jnp.float32)
    x = jnp.where(stop_gradient, jax.lax.stop_gradient(x), x)
    for index in range(2):
      x = nn.relu(nn.Dense(self.width, kernel_init=HE_NORMAL, name=f'fc{index + 1}')(x))
    return nn.Dense(1, kernel_init=HE_NORMAL, name='out')(x)[:, 0]


class ConvDiscriminator(nn.Module):
  """MAL's discriminator for segmentation (Ebrahimi et al. 2020, Sec. 3.2): ``D(F(x))`` on
  the ``d x h x w`` latent tensor.

  Three 3x3 convolutions with ReLU (``width``, ``2 width``, ``2 width``
  channels, the last two at stride 2), global average pooling and a small
  fully connected layer (``fc_width`` units, ReLU) to one logit. The paper
  gives the kind of network, not its widths; these are jal's.

  Attributes:
    width: channels of the first convolution.
    fc_width: units of the fully connected layer.
  """

  width: int = 64
  fc_width: int = 64

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """float32 logits ``[B]`` of float features ``[B, h, w, d]``; ``sigmoid`` is P(labeled)."""
    x = jnp.asarray(x, jnp.float32)
    for index, (channels, stride) in enumerate(
        ((self.width, 1), (2 * self.width, 2), (2 * self.width, 2))):
      x = nn.relu(nn.Conv(channels, (3, 3), strides=stride, padding=1, kernel_init=HE_NORMAL,
                          name=f'conv{index + 1}')(x))
    x = jnp.mean(x, axis=(1, 2))
    x = nn.relu(nn.Dense(self.fc_width, kernel_init=HE_NORMAL, name='fc')(x))
    return nn.Dense(1, kernel_init=HE_NORMAL, name='out')(x)[:, 0]
