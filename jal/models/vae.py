"""VAAL's β-VAE, with TA-VAAL's rank conditioning of the decoder.

VAAL: Sinha, Ebrahimi & Darrell, "Variational Adversarial Active Learning",
ICCV 2019. TA-VAAL: Kim et al., CVPR 2021, which feeds the normalised rank
``r = sigmoid(R(x))`` of its ranker to the VAE's decoder and to the
discriminator (Eqs. 3-7; the discriminator is in `jal.models.discriminators`).

The layer sizes follow VAAL's public reference implementation (sinhasam/vaal,
``model.py``), which the paper does not spell out: an encoder of four 4x4
stride-2 convolutions (PyTorch padding 1, no bias) with ``w, 2w, 4w, 8w``
channels (``w = 128``), each followed by batch norm and ReLU, flattened into
two linear layers for the mean and the log-variance of ``z`` (``z_dim = 32``);
a decoder of one linear layer to an ``[H/8, W/8, 8w]`` map, three 4x4 stride-2
transposed convolutions (padding 1, no bias) to ``4w, 2w, w`` channels with
batch norm and ReLU, and a 1x1 convolution to the image's channels, with no
output activation (the reconstruction is compared with the normalised image
by mean squared error).

Batch norm uses PyTorch's defaults (`jal.models.layers.batch_norm`).
Initialisation: flax defaults (every convolution is followed by batch norm,
which removes the scale of its initial weights).
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.errors import JalError
from jal.models.layers import PAD1, batch_norm, concat_condition

# Each of the encoder's four stride-2 convolutions maps a side s to floor(s / 2).
_MIN_SIDE = 16


# Sub-pixel form of the 4x4 stride-2 transposed convolution (padding 1):
# output row 2m + p reads input rows m - 1, m, m + 1 (a 3x3 window) through
# kernel taps _TAPS[p] (-1: none). Derived from flax's ConvTranspose (no
# kernel flip) over the input dilated by 2 and padded by 2:
# out[2m] = x[m-1] K[0] + x[m] K[2], out[2m+1] = x[m] K[1] + x[m+1] K[3].
_TAPS = ((0, 2, -1), (-1, 1, 3))


def _subpixel_selection() -> jax.Array:
  """float32 ``[2, 3, 4]``: ``S[p, a, t] = 1`` where window row ``a`` of parity ``p`` uses tap ``t``."""
  s = [[[1.0 if tap == t else 0.0 for t in range(4)] for tap in taps] for taps in _TAPS]
  return jnp.asarray(s, jnp.float32)


class ConvTranspose4x4(nn.Module):
  """PyTorch's ``ConvTranspose2d(kernel 4, stride 2, padding 1, bias=False)``, sub-pixel.

  The same function, with the same parameter (``'kernel'`` ``[4, 4, C_in,
  C_out]``, flax's `nn.ConvTranspose` layout and initialiser), as
  ``nn.ConvTranspose(C_out, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
  use_bias=False)``, computed as one 3x3 convolution to ``4 C_out`` channels (one
  group per output parity) followed by depth-to-space. XLA:CPU computes the
  kernel gradient of the transposed form slowly, that of the 3x3 form fast
  (``BENCHMARKS.md``, ``experiments/vaal_step.py``).

  Attributes:
    features: ``C_out``.
    dtype: compute dtype; the kernel is float32.
  """

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """``[B, H, W, C_in]`` -> ``[B, 2H, 2W, C_out]``."""
    kernel = self.param('kernel', nn.initializers.lecun_normal(),
                        (4, 4, x.shape[-1], self.features), jnp.float32)
    s = _subpixel_selection()
    # [3, 3, C_in, 2, 2, C_out]: window (a, b) of output parity (py, px).
    window = jnp.einsum('pat,qbu,tuio->abipqo', s, s, kernel)
    window = window.reshape(3, 3, x.shape[-1], 4 * self.features).astype(self.dtype)
    y = jax.lax.conv_general_dilated(x.astype(self.dtype), window, (1, 1), ((1, 1), (1, 1)),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    b, h, w, _ = y.shape
    y = y.reshape(b, h, w, 2, 2, self.features).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(b, 2 * h, 2 * w, self.features)


class VAEEncoder(nn.Module):
  """VAAL's convolutional encoder ``q(z | x)``.

  Attributes:
    z_dim: latent dimension (32 in VAAL for CIFAR).
    width: channels of the first convolution (128 in VAAL).
    dtype: compute dtype of the convolutions; parameters, ``mu`` and
      ``logvar`` stay float32.
  """

  z_dim: int = 32
  width: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """Encodes a batch of images.

    Args:
      x: float ``[B, H, W, C]``, already normalised, ``H, W >= 16``.
      train: batch statistics (True; apply with ``mutable=['batch_stats']``)
        or running averages (False) in batch norm.

    Returns:
      ``(mu, logvar)``, each float32 ``[B, z_dim]``: the mean and the log of the
      variance of the diagonal Gaussian posterior.
    """
    for index, multiplier in enumerate((1, 2, 4, 8)):
      x = nn.Conv(self.width * multiplier, (4, 4), strides=(2, 2), padding=PAD1, use_bias=False,
                  dtype=self.dtype, param_dtype=jnp.float32, name=f'conv{index + 1}')(x)
      x = nn.relu(batch_norm(train, self.dtype, f'bn{index + 1}')(x))
    x = x.reshape(x.shape[0], -1).astype(jnp.float32)
    mu = nn.Dense(self.z_dim, name='fc_mu')(x)
    logvar = nn.Dense(self.z_dim, name='fc_logvar')(x)
    return mu, logvar


class VAEDecoder(nn.Module):
  """VAAL's transposed-convolution decoder ``p(x | z)`` (or ``p(x | z, r)``).

  The linear layer maps ``z`` to a ``[ceil(H/8), ceil(W/8), 8 * width]`` map,
  and three stride-2 transposed convolutions double it three times, to
  ``8 * ceil(H/8)`` by ``8 * ceil(W/8)``. When a side is not a multiple of 8
  (28x28 MNIST: 32x32), the output is centre-cropped to ``image_shape``
  (starting at ``(8 * ceil(H/8) - H) // 2``). For 32x32 images this is exactly
  the reference's 4x4 -> 8 -> 16 -> 32 decoder. (TA-VAAL's code instead
  changes one kernel to 3 for 28x28 inputs; cropping works for any size.)

  Attributes:
    image_shape: ``(H, W, C)`` of the reconstruction.
    width: channels of the last transposed convolution (128 in VAAL).
    dtype: compute dtype; the reconstruction is returned in float32.
  """

  image_shape: tuple[int, int, int]
  width: int = 128
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    """Decodes latents (with any condition already concatenated).

    Args:
      z: float ``[B, d]``.
      train: batch statistics (True) or running averages (False) in batch norm.

    Returns:
      float32 ``[B, H, W, C]``, unbounded (no output activation).
    """
    height, width, channels = self.image_shape
    h0, w0 = math.ceil(height / 8), math.ceil(width / 8)
    x = nn.Dense(h0 * w0 * 8 * self.width, name='fc')(z.astype(jnp.float32))
    x = x.reshape(z.shape[0], h0, w0, 8 * self.width).astype(self.dtype)
    for index, multiplier in enumerate((4, 2, 1)):
      x = ConvTranspose4x4(self.width * multiplier, self.dtype, name=f'deconv{index + 1}')(x)
      x = nn.relu(batch_norm(train, self.dtype, f'bn{index + 1}')(x))
    x = nn.Conv(channels, (1, 1), dtype=self.dtype, param_dtype=jnp.float32, name='out')(x)
    top, left = (8 * h0 - height) // 2, (8 * w0 - width) // 2
    return x[:, top:top + height, left:left + width, :].astype(jnp.float32)


class VAE(nn.Module):
  """VAAL's β-VAE (Sinha et al. 2019), optionally rank-conditioned (TA-VAAL).

  Parameters are under ``'encoder'`` and ``'decoder'``, batch statistics too.
  Besides ``__call__``, ``vae.apply(variables, x, False, method=VAE.encode)``
  gives ``(mu, logvar)`` without running the decoder (VAAL and TA-VAAL score
  the unlabeled pool with the discriminator on ``mu``).

  Attributes:
    z_dim: latent dimension (32 in VAAL for CIFAR).
    width: channels of the encoder's first convolution (128 in VAAL).
    image_shape: ``(H, W, C)`` of the images; ``H, W >= 16``.
    dtype: compute dtype of the convolutions; parameters and outputs float32.
  """

  z_dim: int = 32
  width: int = 128
  image_shape: tuple[int, int, int] = (32, 32, 3)
  dtype: Any = jnp.float32

  def setup(self) -> None:
    if len(self.image_shape) != 3 or min(self.image_shape[:2]) < _MIN_SIDE:
      raise JalError(f'VAE: image_shape must be (H, W, C) with H, W >= {_MIN_SIDE} '
                     f'(four stride-2 convolutions), got {self.image_shape}')
    self.encoder = VAEEncoder(self.z_dim, self.width, self.dtype)
    self.decoder = VAEDecoder(tuple(self.image_shape), self.width, self.dtype)

  def encode(self, x: jax.Array, train: bool) -> tuple[jax.Array, jax.Array]:
    """``(mu, logvar)``, each float32 ``[B, z_dim]`` (see `VAEEncoder`).

    Raises:
      JalError: ``x`` is not ``[B, *image_shape]``.
    """
    if tuple(x.shape[1:]) != tuple(self.image_shape):
      raise JalError(f'VAE: expected images of shape [B, {", ".join(map(str, self.image_shape))}], '
                     f'got {tuple(x.shape)}')
    return self.encoder(x, train)

  def decode(self, z: jax.Array, train: bool, condition: jax.Array | None = None) -> jax.Array:
    """Reconstructs images from latents ``z`` ``[B, z_dim]`` and an optional condition.

    Returns:
      float32 ``[B, H, W, C]``.
    """
    return self.decoder(concat_condition(z, condition), train)

  def __call__(self, x: jax.Array, train: bool, condition: jax.Array | None = None
               ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Encodes, samples ``z`` and decodes.

    ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)`` (the
    reparameterisation trick, Kingma & Welling 2014), with ``eps`` drawn from
    the ``'sample'`` PRNG stream when the caller gives one
    (``rngs={'sample': key}``); without it ``z = mu`` (deterministic, e.g.
    for evaluation). Sampling does not follow ``train``, as `mc_dropout` does
    not.

    Args:
      x: float ``[B, H, W, C]`` with ``(H, W, C) == image_shape``, normalised.
      train: batch statistics (True; apply with ``mutable=['batch_stats']``)
        or running averages (False) in batch norm.
      condition: optional float ``[B, k]`` (TA-VAAL: ``k = 1``, the
        normalised rank ``r`` in ``[0, 1]``), concatenated to ``z`` before the
        decoder (TA-VAAL Eq. 4: ``p(x | z, r)``). Give it at ``init`` too: it
        changes the shape of the decoder's first layer.

    Returns:
      ``(reconstruction, mu, logvar)``: float32 ``[B, H, W, C]``,
      ``[B, z_dim]`` and ``[B, z_dim]``.

    Raises:
      JalError: ``x`` is not ``[B, *image_shape]``, or ``condition`` is not
        ``[B, k]``.
    """
    mu, logvar = self.encode(x, train)
    z = mu
    if self.has_rng('sample'):
      eps = jax.random.normal(self.make_rng('sample'), mu.shape, jnp.float32)
      z = mu + jnp.exp(0.5 * logvar) * eps
    return self.decode(z, train, condition), mu, logvar
