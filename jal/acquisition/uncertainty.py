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
  return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)
