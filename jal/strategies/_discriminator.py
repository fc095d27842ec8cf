"""The labeledness discriminator's update, shared by VAAL, TA-VAAL and MAL."""

from __future__ import annotations

from typing import Any, Callable

import jax

from jal.objectives import adversarial
from jal.train import TrainState, apply_gradients


def discriminator_step(apply_fn: Callable[..., jax.Array], tx: Any, state: TrainState,
                       inputs_l: tuple, inputs_u: tuple, mask_l: jax.Array, mask_u: jax.Array,
                       learning_rate: jax.Array) -> tuple[TrainState, dict]:
  """One update of a labeledness discriminator D, and its diagnostics.

  The step VAAL, TA-VAAL (Eq. 6) and MAL (Eq. 3) share: D descends on
  `jal.objectives.adversarial.discriminator_loss` (1 = labeled) of its logits on the
  two batches; the inputs carry no gradient to whatever produced them.

  Args:
    apply_fn: ``apply_fn(variables, *inputs) -> logits [B]`` (a flax apply).
    tx: D's optimiser (`jal.train.optim.make_optimizer`).
    state: D's `TrainState` (no batch statistics).
    inputs_l, inputs_u: D's inputs on the labeled and the unlabeled batch
      (e.g. ``(mu, r)``), stopped from the gradient.
    mask_l, mask_u: float32 ``[B]``, 0 on padding.
    learning_rate: float32 scalar.

  Returns:
    The new state and ``discriminator_loss``, ``discriminator_accuracy``,
    ``discriminator_mean_labeled``, ``discriminator_mean_unlabeled`` (of
    the logits before the update).
  """
  inputs_l, inputs_u = jax.lax.stop_gradient((inputs_l, inputs_u))

  def loss_fn(params):
    logits_l = apply_fn({'params': params}, *inputs_l)
    logits_u = apply_fn({'params': params}, *inputs_u)
    return adversarial.discriminator_loss(logits_l, logits_u, mask_l, mask_u), (logits_l,
                                                                                 logits_u)

  (loss, (logits_l, logits_u)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
  state = apply_gradients(tx, state, grads, {}, learning_rate)
  means = adversarial.discriminator_means(logits_l, logits_u, mask_l, mask_u)
  return state, {'discriminator_loss': loss,
                 'discriminator_accuracy': adversarial.discriminator_accuracy(
                     logits_l, logits_u, mask_l, mask_u),
                 'discriminator_mean_labeled': means['labeled'],
                 'discriminator_mean_unlabeled': means['unlabeled']}
