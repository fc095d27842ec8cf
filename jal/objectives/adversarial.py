"""The adversarial objectives of VAAL, TA-VAAL and MAL, as pure functions.

VAAL (Sinha, Ebrahimi & Darrell, ICCV 2019) and TA-VAAL (Kim et al., CVPR
2021) train a VAE and a discriminator D on its latent code in a minimax game;
MAL (Ebrahimi et al. 2020) plays an entropy minimax between the encoder F and
the cosine classifier C through a gradient reversal layer
(`jal.models.layers.gradient_reversal`) and trains D on F's features. D
outputs a logit; ``sigmoid(logit)`` is the probability that an example is
labeled (target 1 = labeled, 0 = unlabeled), and every binary cross-entropy is
computed from logits (`optax.sigmoid_binary_cross_entropy`), finite at any
logit.

Batches have fixed shapes: ``mask`` arrays (float or bool ``[B]``, 1 for real
examples, 0 for padding) drop the padding, and every mean is over the real
examples (0 when there are none).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jal.errors import JalError
from jal.objectives.base import Batch, masked_mean


# ------------------------------------------------------------------------- helpers


def _mask(mask: jax.Array, batch: int, name: str) -> jax.Array:
  mask = jnp.asarray(mask).astype(jnp.float32)
  if mask.shape != (batch,):
    raise JalError(f'{name} must have shape [{batch}] (one entry per example), got {mask.shape}')
  return mask


def _logits(logits: jax.Array, name: str) -> jax.Array:
  logits = jnp.asarray(logits).astype(jnp.float32)
  if logits.ndim != 1:
    raise JalError(f'{name} must be discriminator logits of shape [B], got {logits.shape}')
  return logits


def _bce(logits: jax.Array, target: float, mask: jax.Array) -> jax.Array:
  return masked_mean(optax.sigmoid_binary_cross_entropy(logits, jnp.full_like(logits, target)),
                      mask)


# ---------------------------------------------------------------------------- VAE


def vae_loss_terms(x: jax.Array, reconstruction: jax.Array, mu: jax.Array, logvar: jax.Array,
                   mask: jax.Array) -> dict[str, jax.Array]:
  """The two terms of the β-VAE loss (VAAL's transductive loss; TA-VAAL Eq. 4).

  - ``'reconstruction'``: the mean squared error ``mean_{h,w,c} (x - x^)^2``
    of each example, averaged over the real examples: with no padding this
    is PyTorch's ``MSELoss()`` (the mean over all elements), which VAAL's
    reference code uses for ``-E[log p(x | z)]``.
  - ``'kl'``: ``KL(N(mu, diag(exp(logvar))) || N(0, I)) = -0.5 * sum_j (1 +
    logvar_j - mu_j^2 - exp(logvar_j))`` (Kingma & Welling 2014, App. B),
    summed over the latent dimensions and averaged over the real examples.
    VAAL's reference code (``solver.py``, ``vae_loss``) does not divide by
    the batch: its KL term is the sum over the batch, ``B * kl``; to match it
    at batch size ``B`` use ``beta_here = B * beta_reference``.

  The caller combines them as ``reconstruction + beta * kl`` for the labeled
  and the unlabeled batch (VAAL: ``beta = 1``).

  Args:
    x: float ``[B, H, W, C]``, the (normalised) images.
    reconstruction: float ``[B, H, W, C]``, the decoder's output.
    mu: float ``[B, z_dim]``, the posterior means.
    logvar: float ``[B, z_dim]``, the posterior log-variances.
    mask: float or bool ``[B]``.

  Returns:
    ``{'reconstruction': ..., 'kl': ...}``, float32 scalars.

  Raises:
    JalError: the shapes disagree.
  """
  if x.shape != reconstruction.shape or mu.shape != logvar.shape or mu.shape[0] != x.shape[0]:
    raise JalError(f'vae_loss_terms: x {x.shape} and reconstruction {reconstruction.shape} must '
                   f'match, and mu {mu.shape} and logvar {logvar.shape} must be [B, z_dim]')
  mask = _mask(mask, x.shape[0], 'mask')
  error = jnp.square(x.astype(jnp.float32) - reconstruction.astype(jnp.float32))
  mse = jnp.mean(error.reshape(x.shape[0], -1), axis=-1)
  mu, logvar = mu.astype(jnp.float32), logvar.astype(jnp.float32)
  kl = -0.5 * jnp.sum(1.0 + logvar - jnp.square(mu) - jnp.exp(logvar), axis=-1)
  return {'reconstruction': masked_mean(mse, mask), 'kl': masked_mean(kl, mask)}


def vae_objective(apply_fn, variables, batch: Batch, key, progress, *, beta: float):
  """The β-VAE loss ``reconstruction + beta * KL`` of a batch (a `LossFn`), labels unused.

  ``z`` is sampled by reparameterisation from the ``'sample'`` stream
  (`jal.models.VAE`). Metrics: ``loss``, ``reconstruction``, ``kl``.
  """
  del progress
  (reconstruction, mu, logvar), new_state = apply_fn(
      variables, batch.images, train=True, rngs={'sample': key}, mutable=['batch_stats'])
  terms = vae_loss_terms(batch.images, reconstruction, mu, logvar, batch.mask)
  loss = terms['reconstruction'] + beta * terms['kl']
  return loss, (new_state['batch_stats'], {'loss': loss, **terms})


# -------------------------------------------------------------------- discriminator


def _checked_pair(logits_l, logits_u, mask_l, mask_u):
  """The logits and masks of the two batches as float32, their shapes checked."""
  logits_l, logits_u = _logits(logits_l, 'logits_labeled'), _logits(logits_u, 'logits_unlabeled')
  return (logits_l, logits_u, _mask(mask_l, logits_l.shape[0], 'mask_l'),
          _mask(mask_u, logits_u.shape[0], 'mask_u'))


def _two_pool_bce(logits_labeled, logits_unlabeled, mask_l, mask_u, *, unlabeled_target):
  """BCE with target 1 on the labeled batch plus ``unlabeled_target`` on the other."""
  logits_l, logits_u, mask_l, mask_u = _checked_pair(logits_labeled, logits_unlabeled, mask_l,
                                                     mask_u)
  return _bce(logits_l, 1.0, mask_l) + _bce(logits_u, unlabeled_target, mask_u)


def discriminator_loss(logits_labeled: jax.Array, logits_unlabeled: jax.Array,
                       mask_l: jax.Array, mask_u: jax.Array) -> jax.Array:
  """The discriminator's loss (TA-VAAL Eq. 6; VAAL's ``L_D``; MAL Eq. 3).

  ``L_D = -E_L[log D(z_L)] - E_U[log(1 - D(z_U))]``, with ``D = sigmoid(logit)``:
  the binary cross-entropy with target 1 on the labeled batch plus the one
  with target 0 on the unlabeled batch, each the mean over its real
  examples (the sum of two means, as VAAL's reference code computes it).

  Args:
    logits_labeled: float ``[B_l]``, D's logits on labeled examples.
    logits_unlabeled: float ``[B_u]``, D's logits on unlabeled examples.
    mask_l: float or bool ``[B_l]``.
    mask_u: float or bool ``[B_u]``.

  Returns:
    float32 scalar, >= 0.

  Raises:
    JalError: a shape is wrong.
  """
  return _two_pool_bce(logits_labeled, logits_unlabeled, mask_l, mask_u, unlabeled_target=0.0)


def vae_adversarial_loss(logits_labeled: jax.Array, logits_unlabeled: jax.Array,
                         mask_l: jax.Array, mask_u: jax.Array) -> jax.Array:
  """The VAE's adversarial term (TA-VAAL Eq. 5; VAAL's ``L_adv``).

  ``L_adv = -E_L[log D(z_L)] - E_U[log D(z_U)]``: the encoder is trained so
  that D takes both labeled and unlabeled latents for labeled (target 1 for
  both batches, each a mean over its real examples). The caller weights it by
  ``lambda`` (VAAL's ``adversary_param``, 1) and differentiates only the VAE.
  Arguments, result and errors as `discriminator_loss`'s (the logits are D's
  on the labeled and on the unlabeled latents).
  """
  return _two_pool_bce(logits_labeled, logits_unlabeled, mask_l, mask_u, unlabeled_target=1.0)


def discriminator_accuracy(logits_labeled: jax.Array, logits_unlabeled: jax.Array,
                           mask_l: jax.Array, mask_u: jax.Array) -> jax.Array:
  """The fraction of real examples D assigns to the right pool (a diagnostic).

  An example is predicted labeled when ``D > 0.5``, i.e. ``logit > 0``
  (``logit == 0`` counts as unlabeled). Labeled and unlabeled examples are
  pooled: ``(correct_L + correct_U) / (n_L + n_U)``.

  Args:
    logits_labeled: float ``[B_l]``.
    logits_unlabeled: float ``[B_u]``.
    mask_l: float or bool ``[B_l]``.
    mask_u: float or bool ``[B_u]``.

  Returns:
    float32 scalar in ``[0, 1]``; 0 when there is no real example.
  """
  logits_labeled, logits_unlabeled, mask_l, mask_u = _checked_pair(
      logits_labeled, logits_unlabeled, mask_l, mask_u)
  correct = (jnp.sum(jnp.where(mask_l > 0, logits_labeled > 0, False))
             + jnp.sum(jnp.where(mask_u > 0, logits_unlabeled <= 0, False)))
  return correct.astype(jnp.float32) / jnp.maximum(jnp.sum(mask_l) + jnp.sum(mask_u), 1.0)


def discriminator_means(logits_labeled: jax.Array, logits_unlabeled: jax.Array,
                        mask_l: jax.Array, mask_u: jax.Array) -> dict[str, jax.Array]:
  """The mean of ``D = sigmoid(logit)`` on each pool (a diagnostic).

  TA-VAAL (Kim et al. 2021, Fig. 7b) inspects D's outputs on the unlabeled
  pool: a D whose outputs all concentrate makes the selection nearly random.
  Arguments as `discriminator_accuracy`'s.

  Returns:
    ``{'labeled': ..., 'unlabeled': ...}``, float32 scalars in ``[0, 1]``.
  """
  logits_labeled, logits_unlabeled, mask_l, mask_u = _checked_pair(
      logits_labeled, logits_unlabeled, mask_l, mask_u)
  return {'labeled': masked_mean(jax.nn.sigmoid(logits_labeled), mask_l),
          'unlabeled': masked_mean(jax.nn.sigmoid(logits_unlabeled), mask_u)}


# ------------------------------------------------------------------ minimax entropy


def minimax_entropy(logits: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """MAL's entropy term (Ebrahimi et al. 2020, Eq. 2): the mean prediction entropy.

  ``H = mean over real examples of -sum_k p_k log p_k``, ``p = softmax(logits)``,
  computed from ``log_softmax`` (exact, unlike a ``log(p + eps)``) with
  ``p_k log p_k = 0`` where ``p_k = 0``, so it is finite, with finite
  gradients, at any finite logits. MAL's game ``min_F max_C H`` on unlabeled
  examples is one loss: minimise ``-lambda * H`` with the logits computed as
  ``C(gradient_reversal(F(x), 1.0))``: C descends on ``-H`` (maximises H), and F,
  through the reversal, descends on ``H``.

  Args:
    logits: float ``[B, K]``, C's logits on unlabeled examples.
    mask: optional float or bool ``[B]``; None: every row is real.

  Returns:
    float32 scalar in ``[0, log K]``.

  Raises:
    JalError: ``logits`` is not ``[B, K]`` or ``mask`` not ``[B]``.
  """
  logits = jnp.asarray(logits).astype(jnp.float32)
  if logits.ndim != 2:
    raise JalError(f'minimax_entropy expects logits of shape [B, K], got {logits.shape}')
  mask = jnp.ones(logits.shape[:1]) if mask is None else mask
  mask = _mask(mask, logits.shape[0], 'mask')
  log_p = jax.nn.log_softmax(logits, axis=-1)
  p = jnp.exp(log_p)
  entropy = -jnp.sum(jnp.where(p > 0, p * log_p, 0.0), axis=-1)
  return masked_mean(entropy, mask)


# -------------------------------------------------------------- query diagnostics


def pool_diagnostics(logits_labeled: np.ndarray, logits_candidates: np.ndarray
                     ) -> dict[str, float]:
  """D's view of the two pools at query time (host side, NumPy).

  What a query of VAAL, TA-VAAL or MAL writes to ``results.jsonl``: D's mean
  output on the labeled pool and on the candidates, and D's accuracy at 0.5
  over both (as `discriminator_accuracy`). A collapsed game shows as both
  means near one value and an accuracy near the larger pool's share.

  Args:
    logits_labeled: float ``[n_L]``, D's logits on the labeled pool.
    logits_candidates: float ``[n_C]``, on the query's candidates.

  Returns:
    ``discriminator_mean_labeled``, ``discriminator_mean_candidates`` and
    ``discriminator_accuracy``, Python floats in ``[0, 1]``.
  """
  labeled = np.asarray(logits_labeled, np.float64)
  candidates = np.asarray(logits_candidates, np.float64)
  sigmoid = lambda x: 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow at any logit
  correct = np.sum(labeled > 0) + np.sum(candidates <= 0)
  return {'discriminator_mean_labeled': float(np.mean(sigmoid(labeled))),
          'discriminator_mean_candidates': float(np.mean(sigmoid(candidates))),
          'discriminator_accuracy': float(correct / max(labeled.size + candidates.size, 1))}
