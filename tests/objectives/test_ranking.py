"""Tests of jal.objectives.ranking: Learning Loss's margin ranking loss and TA-VAAL's pairwise
ranking loss (Kim et al. 2021, Eq. 1) by hand, a padded example dropping its pair and no gradient
into the targets; and the loss prediction objective, which detaches the backbone after the given
progress."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from helpers import loss_prediction_net as _loss_prediction_net, init_variables
from jal.objectives import Batch, ranking as losses


def test_margin_ranking_loss_by_hand():
  # B = 5: pairs (0, 4) and (1, 3); example 2 is the unpaired middle.
  predicted = jnp.array([2.0, 0.5, 9.0, 1.0, 0.0])
  target = jnp.array([3.0, 1.0, 7.0, 2.0, 1.0])
  # Pair (0, 4): l0 > l4, s = +1, l^0 - l^4 = 2: max(0, 1 - 2) = 0.
  # Pair (1, 3): l1 < l3, s = -1, l^1 - l^3 = -0.5: max(0, 1 - 0.5) = 0.5.
  got = losses.margin_ranking_loss(predicted, target, jnp.ones(5))
  np.testing.assert_allclose(got, (0.0 + 0.5) / 2, rtol=1e-6)
  # Margin 3: pair (0, 4) gives 1, pair (1, 3) 2.5.
  np.testing.assert_allclose(losses.margin_ranking_loss(predicted, target, jnp.ones(5), 3.0),
                             1.75, rtol=1e-6)
  # A padded example drops its pair: only (1, 3) counts.
  mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  np.testing.assert_allclose(losses.margin_ranking_loss(predicted, target, mask), 0.5, rtol=1e-6)
  # Equal true losses count as l_i <= l_j (s = -1), as in the reference code.
  np.testing.assert_allclose(
      losses.margin_ranking_loss(jnp.array([0.0, 0.0]), jnp.array([1.0, 1.0]), jnp.ones(2)), 1.0)
  assert float(losses.margin_ranking_loss(predicted, target, jnp.zeros(5))) == 0.0


def test_pairwise_ranking_loss_by_hand():
  predicted = jnp.array([2.0, 0.5, 9.0, 1.0, 0.0])
  target = jnp.array([3.0, 1.0, 7.0, 2.0, 1.0])
  # Eq. 1 of Kim et al. (2021): pair (0, 4) has I = 1, d = 2: -log sigma(2);
  # pair (1, 3) has I = 0, d = -0.5: -log(1 - sigma(-0.5)) = -log sigma(0.5).
  sigma = lambda x: 1 / (1 + np.exp(-x))
  want = -(2 / 4) * (np.log(sigma(2.0)) + np.log(1 - sigma(-0.5)))
  got = losses.pairwise_ranking_loss(predicted, target, jnp.ones(5))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  mask = jnp.array([1.0, 1.0, 1.0, 1.0, 0.0])
  np.testing.assert_allclose(losses.pairwise_ranking_loss(predicted, target, mask),
                             -np.log(sigma(0.5)), rtol=1e-6)


def test_ranking_losses_do_not_differentiate_the_targets():
  predicted, target = jnp.array([1.0, 0.0, 2.0, 3.0]), jnp.array([0.0, 1.0, 3.0, 2.0])
  for loss in (losses.margin_ranking_loss, losses.pairwise_ranking_loss):
    grad = jax.grad(lambda t: loss(predicted, t, jnp.ones(4)))(target)
    np.testing.assert_array_equal(grad, 0.0)


def test_learning_loss_objective_detaches_the_backbone_after_the_given_progress():
  import functools
  model = _loss_prediction_net()
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  labels, mask = jnp.array([0, 1, 2, 0, 1, 2]), jnp.ones(6)
  variables = init_variables(model, x, seed=1, train=False)
  objective = functools.partial(losses.loss_prediction_objective,
                                ranking_loss=losses.margin_ranking_loss, weight=1.0,
                                detach_after=0.6)

  @functools.partial(jax.jit, static_argnums=0)
  def backbone_grad(weight, progress):
    def f(params):
      out = functools.partial(objective, weight=weight)(
          model.apply, {**variables, 'params': params}, Batch(x, labels, mask),
          jax.random.key(0), progress)
      return out[0]
    return jax.grad(f)(variables['params'])['backbone']

  # Before 60%: the ranking loss reaches the backbone; from 60% on it does not.
  task_only = backbone_grad(0.0, jnp.float32(0.0))
  assert not all(np.allclose(a, b) for a, b in zip(
      jax.tree.leaves(backbone_grad(1.0, jnp.float32(0.5))), jax.tree.leaves(task_only)))
  chex.assert_trees_all_close(backbone_grad(1.0, jnp.float32(0.6)), task_only, atol=1e-6)
