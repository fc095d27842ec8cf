"""Uncertainty scores of the task model's predictive distribution."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def entropy(logits: jax.Array) -> jax.Array:
  """Predictive entropy ``H(p) = -sum_c p_c log p_c`` (Shannon 1948).

  The max-entropy baseline of the PAL, initial-pools and SCAL papers.

  Args:
    logits: float with shape ``[B, C]``.

  Returns:
    float32 with shape ``[B]``, in nats, in ``[0, log C]``.
  """
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  p = jnp.exp(log_p)
  # 0 log 0 = 0: a class with probability 0 (logit -inf) adds nothing, not NaN.
  return -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)


def least_confidence(logits: jax.Array) -> jax.Array:
  """Least confidence ``1 - max_c p_c`` (Settles 2009, Sec. 3.1).

  Args:
    logits: float with shape ``[B, C]``.

  Returns:
    float32 with shape ``[B]``, in ``[0, 1 - 1/C]``; query the highest.
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  return 1.0 - jnp.max(p, axis=-1)


def margin(logits: jax.Array) -> jax.Array:
  """Min-margin score ``-(p_(1) - p_(2))``, the two largest probabilities
  (Scheffer et al. 2001; Settles 2009, Sec. 3.1).

  The smallest margin is the most uncertain, so the score is the negated
  margin and, as for every score here, the highest is queried.

  Args:
    logits: float with shape ``[B, C]``, ``C >= 2``.

  Returns:
    float32 with shape ``[B]``, in ``[-1, 0]``; 0 for a tie of the top two.
  """
  p = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  top2, _ = jax.lax.top_k(p, 2)
  return top2[..., 1] - top2[..., 0]
