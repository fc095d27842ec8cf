"""BatchBALD (Kirsch, van Amersfoort & Gal, NeurIPS 2019): the greedy batch of largest joint BALD.

"BatchBALD: Efficient and Diverse Batch Acquisition for Deep Bayesian Active
Learning" scores a batch ``x_1..x_n`` by the mutual information between its
labels and the weights (Eq. 7),

  a({x_1..x_n}) = I(y_1..y_n ; w) = H(y_1..y_n) - sum_i E_w[H(y_i | w)],

and builds the batch greedily (Algorithm 1): step ``n`` adds the candidate
``x`` of largest ``a({x_1..x_(n-1), x})``. ``a`` is submodular, so the greedy
batch is within ``1 - 1/e`` of the best (their Sec. 3.2). The first pick is
BALD's argmax; two identical candidates add no information together, so the
second copy of a chosen point scores its BALD lower (the paper's Fig. 1).

With ``T`` MC-dropout samples ``w_t`` the same for every candidate
("consistent MC dropout", their Sec. 4), ``p(y_1..y_n) = (1/T) sum_t prod_i
p(y_i | x_i, w_t)``. The joint entropy of the chosen points with a candidate
``x`` is (their Sec. 3.3, Eqs. 12-13)

  H(y_1..y_(n-1), y) = sum_c p(c) sum_y p(y | c) (-log p(c, y)),
  p(c, y) = (1/T) sum_t P[c, t] p(y | x, w_t),   P[c, t] = p(c | w_t),

over the configurations ``c`` of the chosen points' labels:

- exact: every one of the ``C^(n-1)`` configurations, ``P`` a
  ``[C^(n-1), T]`` matrix extended by one point per pick (an outer product
  with its ``[T, C]`` probabilities), while ``C^(n-1) <= max_configurations``;
- sampled, beyond that: ``M`` configurations ``c_s ~ p(c)``, each weighing
  ``1/M`` (the estimator of their Eq. 13). They are drawn as the paper's
  code draws them, ``M / T`` per weight sample: ``w_t`` fixed, then the
  chosen points' labels independently given it. Here each configuration
  keeps its ``w_t`` and is extended by one draw per pick, ``y ~ p(y | x_pick,
  w_t)``: the same distribution as drawing all the chosen labels afresh each
  pick (labels are independent given ``w``), at ``O(M T)`` a pick instead of
  ``O(M T n)``.

``M`` is ``max_configurations`` rounded down to a multiple of ``T``; the
paper's code uses 40,000 (``num_samples_per_ws = 40000 // k``) and switches
at the same number. ``P`` is kept as ``log P`` and each row rescaled by its
largest entry before the product, so a configuration's probability (a
product of ``n - 1`` probabilities: far below float32's range after a few
dozen picks) never underflows; the paper's code works in float64 instead.

Memory: the candidates' probabilities ``O(n T C)``, the state ``O(T M)``
(exact: ``T C^(n-1) <= T M``), and per chunk of ``b`` candidates a
``[b, M, C]`` block (``b`` chosen to keep it near 16 MB). Time per pick:
``O(n M T C)`` (a matmul). Every step is a compiled function of fixed
shapes (candidates padded to `jal.acquisition.coreset.bucket_size`): one
compilation per number of exact configurations (``C^0 .. C^j``) and one for
the sampled ones, and the picks stay on the device until the batch is done.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jal.acquisition.coreset import bucket_size

# Elements of one chunk's [b, R, C] block (float32: 16 MB).
_CHUNK_ELEMENTS = 1 << 22
# The largest chunk of candidates (the smallest bucket: one step, no loop, for few rows).
_MAX_CHUNK = 256
# The paper's code: 40,000 configurations (Kirsch et al. 2019, src/multi_bald.py).
DEFAULT_MAX_CONFIGURATIONS = 40_000


def _neg_xlogx(p: jax.Array) -> jax.Array:
  """``-p log p`` with ``0 log 0 = 0``."""
  return -jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0)


def conditional_entropies(probs: jax.Array) -> jax.Array:
  """``E_w[H(y | x, w)] ~ (1/T) sum_t H(p(y | x, w_t))`` of each candidate.

  Args:
    probs: float ``[n, T, C]``, ``p(y | x_i, w_t)``.

  Returns:
    float32 ``[n]``, nats.
  """
  return jnp.mean(jnp.sum(_neg_xlogx(probs.astype(jnp.float32)), -1), -1)


def bald_scores(probs: jax.Array) -> jax.Array:
  """BALD ``H((1/T) sum_t p_t) - (1/T) sum_t H(p_t)`` (Houlsby et al. 2011), float32 ``[n]``:
  the BatchBALD score of a batch of one."""
  probs = probs.astype(jnp.float32)
  return jnp.sum(_neg_xlogx(jnp.mean(probs, 1)), -1) - conditional_entropies(probs)


def _chunk(num_rows: int, num_classes: int) -> int:
  """Candidates per chunk: a power of two, ``b R C`` near `_CHUNK_ELEMENTS`."""
  size = max(1, _CHUNK_ELEMENTS // max(1, num_rows * num_classes))
  return min(_MAX_CHUNK, 1 << (size.bit_length() - 1))


def joint_entropies(log_joint: jax.Array, probs: jax.Array, exact: bool,
                    chunk: int | None = None) -> jax.Array:
  """``H(y_1..y_(n-1), y)`` of the chosen points' labels with each candidate's (Eqs. 12-13).

  Args:
    log_joint: float32 ``[R, T]``: ``log p(c_r | w_t)`` of ``R`` configurations
      of the chosen points' labels (no point chosen: ``R = 1``, zeros).
    probs: float ``[n, T, C]``: the candidates' ``p(y | x, w_t)``.
    exact: the ``R`` rows are every configuration (weighted by ``p(c_r)``), or
      ``R`` draws from ``p(c)`` (weighted ``1/R``).
    chunk: candidates per step, dividing ``n`` (default: the largest power of
      two that divides ``n`` and keeps a chunk's block near 16 MB).

  Returns:
    float32 ``[n]``, nats.
  """
  num_rows, num_samples = log_joint.shape
  n, _, num_classes = probs.shape
  chunk = chunk or math.gcd(n, _chunk(num_rows, num_classes))
  scale = jnp.max(log_joint, axis=1)
  scale = jnp.where(jnp.isfinite(scale), scale, 0.0)  # an impossible configuration
  rescaled = jnp.exp(log_joint - scale[:, None])  # [R, T], largest entry 1 per row
  if exact:
    weights = jnp.exp(scale) * jnp.mean(rescaled, axis=1)  # p(c_r)
  else:
    weights = jnp.full((num_rows,), 1.0 / num_rows, jnp.float32)
  offset = scale - jnp.log(jnp.float32(num_samples))  # log p(c, y) = log q + offset

  def one_chunk(p):  # [b, T, C]
    q = jnp.einsum('rt,btc->brc', rescaled, p.astype(jnp.float32))  # T e^-scale p(c, y)
    total = jnp.sum(q, axis=-1, keepdims=True)
    positive = q > 0
    conditional = jnp.where(positive, q / jnp.where(total > 0, total, 1.0), 0.0)  # p(y | c)
    log_p = jnp.log(jnp.where(positive, q, 1.0)) + offset[None, :, None]
    return -jnp.einsum('r,brc->b', weights, conditional * log_p)

  if chunk == n:
    return one_chunk(probs)
  out = lax.map(one_chunk, probs.reshape(n // chunk, chunk, *probs.shape[1:]))
  return out.reshape(n)


_conditional_entropies = jax.jit(conditional_entropies)


@functools.partial(jax.jit, static_argnames=('exact',))
def _pick(log_joint, probs, conditional, available, chosen_conditional, exact):
  """The greedy's step: the candidate of largest ``a``, and ``a`` of the batch with it."""
  values = joint_entropies(log_joint, probs, exact) - conditional
  values = jnp.where(available, values, -jnp.inf)
  pick = jnp.argmax(values)  # ties: the first
  return pick, values[pick] - chosen_conditional, available.at[pick].set(False), \
      chosen_conditional + conditional[pick]


@jax.jit
def _extend_exact(log_joint, probs, pick):
  """``log P`` over the configurations with the picked point's label: ``[R C, T]``."""
  log_p = jnp.log(probs[pick].astype(jnp.float32))  # [T, C]
  return (log_joint[:, None, :] + log_p.T[None, :, :]).reshape(-1, log_joint.shape[1])


@jax.jit
def _extend_sampled(log_joint, weight_index, probs, pick, key):
  """Each sampled configuration extended by ``y ~ p(y | x_pick, w_t)`` of its own ``w_t``."""
  log_p = jnp.log(probs[pick].astype(jnp.float32))  # [T, C]
  labels = jax.random.categorical(key, log_p[weight_index])  # [M]
  return log_joint + log_p[:, labels].T


@functools.partial(jax.jit, static_argnames=('size',))
def _pad(probs, size):
  """``probs`` padded with uniform rows to ``size`` (the padding is never available)."""
  n, t, c = probs.shape
  probs = probs.astype(jnp.float32)
  if size == n:
    return probs
  return jnp.concatenate([probs, jnp.full((size - n, t, c), 1.0 / c, jnp.float32)])


def num_sampled_configurations(max_configurations: int, num_samples: int) -> int:
  """``M``: ``max_configurations`` rounded down to a multiple of ``T`` (at least ``T``)."""
  return max(1, max_configurations // num_samples) * num_samples


def batchbald(probs: jax.Array, k: int, key: jax.Array,
              max_configurations: int = DEFAULT_MAX_CONFIGURATIONS,
              num_candidates: int | None = None) -> tuple[np.ndarray, np.ndarray]:
  """The greedy BatchBALD batch of ``k`` (Kirsch et al. 2019, Algorithm 1).

  Args:
    probs: float ``[n, T, C]`` on the device: ``p(y | x_i, w_t)`` of each
      candidate under ``T`` weight samples shared by all candidates.
    k: the batch size (clipped to the candidates).
    key: the PRNG key of the sampled configurations (unused while exact).
    max_configurations: the exact joint is used while ``C^(n-1)`` is at most
      this; beyond, ``M`` = this rounded down to a multiple of ``T`` sampled
      configurations.
    num_candidates: the first rows of ``probs`` that are candidates (default:
      all); the rest are padding.

  Returns:
    ``(picks, values)``: int64 ``[k]`` positions in ``probs`` in the order
    picked, and float32 ``[k]``: ``a({x_1..x_i})`` of the batch after pick
    ``i``, nats (exact, or the sampled estimate).

  Raises:
    ValueError: ``probs`` is not ``[n, T, C]`` or ``max_configurations < 1``.
  """
  if probs.ndim != 3:
    raise ValueError(f'probs must be [n, T, C], got shape {probs.shape}')
  if max_configurations < 1:
    raise ValueError(f'max_configurations={max_configurations} must be at least 1')
  n = probs.shape[0] if num_candidates is None else num_candidates
  _, num_samples, num_classes = probs.shape
  k = min(int(k), n)
  if k == 0:
    return np.zeros(0, np.int64), np.zeros(0, np.float32)
  probs = _pad(probs, bucket_size(probs.shape[0]))
  conditional = _conditional_entropies(probs)
  available = jnp.arange(probs.shape[0]) < n
  chosen_conditional = jnp.float32(0.0)
  exact = jnp.zeros((1, num_samples), jnp.float32)
  # Exact while C^i <= max_configurations (i points chosen); log C^i by integers.
  exact_picks = sum(1 for i in range(k) if num_classes ** i <= max_configurations)
  sampled = None
  if exact_picks < k:
    m = num_sampled_configurations(max_configurations, num_samples)
    sampled = jnp.zeros((m, num_samples), jnp.float32)
    weight_index = jnp.arange(m) // (m // num_samples)
  picks, values = [], []
  for i in range(k):
    state, is_exact = (exact, True) if i < exact_picks else (sampled, False)
    pick, value, available, chosen_conditional = _pick(
        state, probs, conditional, available, chosen_conditional, exact=is_exact)
    picks.append(pick)
    values.append(value)
    if i + 1 < exact_picks:
      exact = _extend_exact(exact, probs, pick)
    if sampled is not None and i + 1 < k:
      sampled = _extend_sampled(sampled, weight_index, probs, pick, jax.random.fold_in(key, i))
  picks, values = jax.device_get((jnp.stack(picks), jnp.stack(values)))
  return np.asarray(picks, np.int64), np.asarray(values, np.float32)
