"""The scores of PAL, Pretext-based Active Learning (Bhatnagar et al. 2021).

The query picks the samples with the HIGHEST hybrid score S: novel samples
have S_S near 0 and S_C near 0, familiar ones S_S near -4 and S_C very
negative (Sec. 3.1-3.2: "We select the N most informative samples from D_U
with the highest S(x_u)"). Algorithm 1 of the paper writes argmin; the prose
and the definitions agree with each other and not with the algorithm box, so
jal follows the prose.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def self_supervision_score(rotation_logits: jax.Array) -> jax.Array:
  """``S_S(x) = -sum_i g(rot90_i(x))_i`` (Eq. 1); also ``S_D`` with ``g'``.

  Args:
    rotation_logits: float with shape ``[4, B, 4]``: entry ``[i, b]`` holds
      the rotation head's logits for example ``b`` rotated by ``90 * i``
      degrees.

  Returns:
    float32 with shape ``[B]`` in ``[-4, 0]``: minus the summed probability the
    head gives to the true rotation of each of the four copies.
  """
  probs = jax.nn.softmax(rotation_logits.astype(jnp.float32), axis=-1)
  true_rotation = probs[jnp.arange(4), :, jnp.arange(4)]  # [4, B]
  return -jnp.sum(true_rotation, axis=0)


def classification_score(logits: jax.Array) -> jax.Array:
  """``S_C(x) = -KL(U || h(x))`` (Eq. 3), ``U`` uniform over the ``C`` classes.

  ``KL(U || h) = sum_c (1/C) log((1/C) / h_c) = -log C - (1/C) sum_c log h_c``.

  Args:
    logits: float with shape ``[B, C]`` from the classification head ``h``.

  Returns:
    float32 with shape ``[B]``, ``<= 0``; 0 for a uniform prediction, unbounded
    below as the prediction grows confident.
  """
  log_h = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  num_classes = logits.shape[-1]
  return jnp.log(num_classes) + jnp.mean(log_h, axis=-1)


def hybrid_score(s_s: jax.Array, s_c: jax.Array, lambda1: float,
                 s_d: jax.Array | None = None, lambda2: float = 0.0) -> jax.Array:
  """``S = S_S + lambda1 S_C`` (Eq. 3), plus ``lambda2 S_D`` after the first sub-query (Eq. 4).

  Args:
    s_s, s_c: float with shape ``[B]``.
    lambda1: weight of the classification score, ``>= 0``.
    s_d: optional float ``[B]``, the diversity score from the fine-tuned
      rotation network ``g'``.
    lambda2: weight of ``s_d``.

  Returns:
    float with shape ``[B]``; query the highest.
  """
  score = s_s + lambda1 * s_c
  if s_d is not None:
    score = score + lambda2 * s_d
  return score
