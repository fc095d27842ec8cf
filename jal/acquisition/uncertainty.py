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


# -- several predictions per example: MC-dropout samples or ensemble members --


def log_mean_probabilities(logits: jax.Array) -> jax.Array:
  """``log (1/T) sum_t softmax(logits_t)``: the averaged predictive distribution.

  The MC estimate of ``p(y | x, D)`` (Gal & Ghahramani 2016) and the
  prediction of an ensemble (Lakshminarayanan et al. 2017), computed in log
  space (log-sum-exp), so a class no sample gives mass stays ``-inf``, not NaN.

  Args:
    logits: float with shape ``[B, T, C]`` (T samples or members).

  Returns:
    float32 log-probabilities with shape ``[B, C]``; valid logits for
    `entropy`, `least_confidence` and `margin`.
  """
  log_p = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return jax.scipy.special.logsumexp(log_p, axis=1) - jnp.log(logits.shape[1])


def predictive_entropy(logits: jax.Array) -> jax.Array:
  """Entropy of the averaged prediction, ``H[(1/T) sum_t p_t]`` (max-entropy with
  MC dropout: DBAL's acquisition, Gal, Islam & Ghahramani, ICML 2017, Sec. 3).

  Args:
    logits: float with shape ``[B, T, C]``.

  Returns:
    float32 with shape ``[B]``, nats, in ``[0, log C]``.
  """
  return entropy(log_mean_probabilities(logits))


def bald(logits: jax.Array) -> jax.Array:
  """BALD: the mutual information between the label and the weights,
  ``I[y, w | x, D] = H[(1/T) sum_t p_t] - (1/T) sum_t H[p_t]``
  (Houlsby et al. 2011; Gal et al. 2017, Sec. 3; Krishnan et al. 2021, Eq. 8).

  Args:
    logits: float with shape ``[B, T, C]``, one row per stochastic pass.

  Returns:
    float32 with shape ``[B]``, nats, in ``[0, log C]`` up to rounding
    (clipped at 0 below: the estimate is non-negative by Jensen's inequality);
    0 when all T passes agree.
  """
  expected = jnp.mean(entropy(logits), axis=1)
  return jnp.maximum(predictive_entropy(logits) - expected, 0.0)


def variation_ratio(logits: jax.Array) -> jax.Array:
  """Variation ratio ``1 - f_m / T`` of the T predicted classes, ``f_m`` the
  count of the modal class (Freeman 1965; Beluch et al., CVPR 2018, Eq. 1).

  Args:
    logits: float with shape ``[B, T, C]`` (ensemble members or samples).

  Returns:
    float32 with shape ``[B]``, in ``[0, 1 - 1/min(T, C)]``, in steps of
    ``1/T``; 0 when every member predicts the same class.
  """
  votes = jnp.argmax(logits, axis=-1)  # [B, T]
  counts = jnp.sum(jax.nn.one_hot(votes, logits.shape[-1], dtype=jnp.int32), axis=1)
  return 1.0 - jnp.max(counts, axis=-1).astype(jnp.float32) / logits.shape[1]
