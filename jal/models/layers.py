"""Layers shared by the networks: batch norm with PyTorch's constants, padding,
pooling, a conv-BN-ReLU unit, MC dropout, gradient reversal and ℓ2-normalisation.

Batch norm and padding follow PyTorch, because the reference implementations
of the papers are PyTorch code: BatchNorm2d's momentum 0.1 on the new value
and epsilon 1e-5, and ``padding=1`` for a 3x3 convolution (flax's ``'SAME'``
pads ``(0, 1)`` at stride 2, which samples other pixels).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.errors import JalError

# PyTorch's BatchNorm2d defaults (momentum 0.1 on the new value, eps 1e-5) in
# flax's convention (momentum on the running value).
_BN_MOMENTUM = 0.9
_BN_EPSILON = 1e-5
# PyTorch's padding=1 for a 3x3 conv.
PAD1 = ((1, 1), (1, 1))
# He-normal (Kaiming-normal, fan-in, untruncated): VAAL's and MAL's
# discriminator initialisation.
HE_NORMAL = nn.initializers.variance_scaling(2.0, 'fan_in', 'normal')
# Like torch.nn.functional.normalize: a zero vector stays zero.
_NORM_EPS = 1e-12


def batch_norm(train: bool, dtype: Any, name: str | None = None) -> nn.BatchNorm:
  """BatchNorm with PyTorch's defaults (Ioffe & Szegedy 2015), shared by all networks.

  Args:
    train: normalise with the batch statistics and update the running averages
      (True) or normalise with the running averages (False).
    dtype: compute dtype; scale, bias and the running averages stay float32.
    name: the submodule's name.

  Returns:
    An unbound `nn.BatchNorm` to call on ``[B, H, W, C]`` arrays.
  """
  return nn.BatchNorm(use_running_average=not train, momentum=_BN_MOMENTUM,
                      epsilon=_BN_EPSILON, dtype=dtype, param_dtype=jnp.float32, name=name)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """2x2 max-pool with stride 2 that leaves an axis of size 1 alone.

  Like PyTorch's ``MaxPool2d(2, 2)`` (odd sizes round down), except that an
  axis that is already 1 pixel long is not pooled, so that small inputs (8x8
  digits, 28x28 MNIST) get through all of VGG's pools.

  Args:
    x: array with shape ``[B, H, W, C]``.

  Returns:
    Array with shape ``[B, H // 2 or 1, W // 2 or 1, C]``, same dtype.
  """
  window = tuple(2 if size >= 2 else 1 for size in x.shape[1:3])
  if window == (1, 1):
    return x
  return nn.max_pool(x, window, strides=window, padding='VALID')


def _mix32(x: jax.Array) -> jax.Array:
  """A bijective 32-bit integer hash (the "lowbias32" finalizer: two multiply-xorshift
  rounds), whose output bits each depend on every input bit."""
  x = x ^ (x >> 16)
  x = x * jnp.uint32(0x7FEB352D)
  x = x ^ (x >> 15)
  x = x * jnp.uint32(0x846CA68B)
  return x ^ (x >> 16)


def dropout_keep_mask(key: jax.Array, shape: tuple[int, ...], keep: float) -> jax.Array:
  """bool ``shape``: which elements dropout keeps, each with probability ``keep``.

  A counter-based draw: two 32-bit words from ``key`` (one threefry call per
  mask, not per element) seed a hash of each element's position, and an
  element is kept where the hash falls below ``keep * 2^32``. Threefry per
  element made MC dropout's masks the cost of a BALD query on a CPU; the hash
  is about 9x cheaper there (``BENCHMARKS.md``). Masks of different keys
  (samples, layers, steps) are independent, and elements within a mask too,
  as far as a test of the keep rate and of pairwise co-occurrence can tell
  (tests/models/test_layers.py). ``keep`` is exact to ``2^-32``.

  Args:
    key: a PRNG key.
    shape: the mask's shape (at most ``2^32`` elements).
    keep: the probability of keeping an element, in ``(0, 1]``.
  """
  words = jax.random.bits(key, (2,), jnp.uint32)
  size = 1
  for d in shape:
    size *= d
  position = jax.lax.iota(jnp.uint32, size).reshape(shape)
  hashed = _mix32(_mix32(position * jnp.uint32(0x9E3779B9) + words[0]) ^ words[1])
  threshold = jnp.uint32(min(int(round(keep * 2.0**32)), 2**32 - 1))
  return hashed < threshold if keep < 1.0 else jnp.ones(shape, bool)


def mc_dropout(module: nn.Module, x: jax.Array, rate: float) -> jax.Array:
  """Inverted dropout of ``x`` with ``rate`` inside ``module``, if a stream is given.

  MC-dropout methods (BALD, DBAL; Gal & Ghahramani 2016, Gal et al. 2017)
  need dropout in training and in their stochastic scoring passes, but not
  when the model is evaluated, while batch norm must use its running
  averages in both scoring and evaluation. So this dropout does not follow
  ``train``: it is active exactly when ``apply`` is given ``rngs={'dropout':
  key}`` (the train step always passes one; `jal.train.Trainer.predict`
  never does). Its masks come from `dropout_keep_mask`.

  Args:
    module: the calling module (it draws from its ``'dropout'`` stream).
    x: any array.
    rate: probability of zeroing an element, in ``[0, 1)``; 0 adds no layer.

  Returns:
    ``x`` with elements zeroed with probability ``rate`` and the others scaled
    by ``1 / (1 - rate)`` when ``module`` has a ``'dropout'`` PRNG stream,
    else ``x`` unchanged.
  """
  if rate == 0.0 or not module.has_rng('dropout'):
    return x
  keep = dropout_keep_mask(module.make_rng('dropout'), x.shape, 1.0 - rate)
  return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros((), x.dtype))


def conv_bn_relu(module: nn.Module, x: jax.Array, features: int, *, train: bool, dtype: Any,
                 dropout_rate: float, conv_name: str, bn_name: str) -> jax.Array:
  """A 3x3 convolution (with bias, padding 1), batch norm, ReLU, then MC dropout.

  The unit of the VGG-style networks (`jal.models.VGG16`, `jal.models.SmallCNN`),
  created inside ``module``'s compact ``__call__`` under the given names.

  Args:
    module: the calling module.
    x: ``[B, H, W, C_in]``.
    features: ``C_out``.
    train: batch statistics (True) or running averages (False) in batch norm.
    dtype: compute dtype; parameters stay float32.
    dropout_rate: `mc_dropout` after the activation (0: none).
    conv_name, bn_name: the submodules' names.

  Returns:
    ``[B, H, W, features]`` in ``dtype``.
  """
  # The submodules bind to ``module``, whose compact method is running.
  x = nn.Conv(features, (3, 3), padding=PAD1, use_bias=True, dtype=dtype,
              param_dtype=jnp.float32, name=conv_name)(x)
  x = nn.relu(batch_norm(train, dtype, bn_name)(x))
  return mc_dropout(module, x, dropout_rate)


@jax.custom_vjp
def _reverse(x: Any, scale: jax.Array) -> Any:
  return x


def _reverse_fwd(x, scale):
  return x, scale


def _reverse_bwd(scale, g):
  flip = lambda t: (-scale).astype(t.dtype) * t
  return jax.tree.map(flip, g), jnp.zeros_like(scale)


_reverse.defvjp(_reverse_fwd, _reverse_bwd)


def gradient_reversal(x: Any, scale: float | jax.Array = 1.0) -> Any:
  """The gradient reversal layer (Ganin & Lempitsky, ICML 2015, Sec. 3.2).

  The identity in the forward pass; in the backward pass the incoming
  gradient is multiplied by ``-scale``. MAL (Ebrahimi et al. 2020, Sec. 3.1)
  puts it between F and C so that one descent step on ``-H`` (the negated
  entropy of `jal.objectives.adversarial.minimax_entropy`) makes C maximise
  the entropy and F minimise it.

  Args:
    x: an array or a pytree of floating-point arrays, any shape and dtype;
      the reversed gradient keeps each leaf's dtype.
    scale: the reversal weight ``lambda`` (Python float or float scalar; may
      be traced). It is not differentiated: its gradient is zero.

  Returns:
    ``x`` unchanged.
  """
  return _reverse(x, jnp.asarray(scale, jnp.float32))


def l2_normalize(x: jax.Array, axis: int = -1) -> jax.Array:
  """``x / max(||x||_2, 1e-12)`` along ``axis``, in float32; a zero vector stays zero.

  The one ℓ2-normalisation of jal: the projection head and the supervised
  contrastive loss (Khosla et al. 2020), the cosine classifier and MAL's
  discriminator input (Ebrahimi et al. 2020), and the cosine similarity of
  SCAL's query (Krishnan et al. 2021). A zero vector's norm is taken from a
  stand-in (the "double where"), so the gradient is finite there too
  (``jnp.linalg.norm``'s is NaN at 0); elsewhere the values and gradients
  are those of the plain formula.

  Args:
    x: float array, any shape.
    axis: the axis normalised.

  Returns:
    float32, the shape of ``x``.
  """
  x = jnp.asarray(x).astype(jnp.float32)
  nonzero = jnp.any(x != 0, axis=axis, keepdims=True)
  norm = jnp.linalg.norm(jnp.where(nonzero, x, 1.0), axis=axis, keepdims=True)
  return x / jnp.maximum(jnp.where(nonzero, norm, 0.0), _NORM_EPS)


def concat_condition(z: jax.Array, condition: jax.Array | None) -> jax.Array:
  """``z`` ``[B, d]`` with a condition ``[B, k]`` appended (TA-VAAL's rank), or ``z`` alone.

  Raises:
    JalError: ``condition`` is not ``[B, k]``.
  """
  if condition is None:
    return z
  condition = jnp.asarray(condition, jnp.float32)
  if condition.ndim != 2 or condition.shape[0] != z.shape[0]:
    raise JalError(f'condition must have shape [B, k] with B = {z.shape[0]}, '
                   f'got {condition.shape}')
  return jnp.concatenate([z, condition], axis=-1)
