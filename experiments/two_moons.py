r"""TA-VAAL's illustrative example (Kim et al. 2021, Sec. 4.1, Fig. 1), re-implemented for MLPs.

A standalone re-implementation, outside jal's `Strategy` interface: jal's
strategies, trainers and models work on images (uint8 ``[N, H, W, C]``
pools, convolutional backbones, image augmentation), and this example's
points are 2-D and its networks small MLPs. So the three strategies below
are written here again, in a few hundred lines of flax and optax, from
jal's losses (`jal.objectives`) and key derivation (`jal.rng`) only; they
are not the library's `learning_loss` and `vaal` strategies, and a change
there does not reach this script.

Three active learners query an imbalanced two-moons problem from the same
initial pool, and the figure shows where each puts its queries relative to
the task learner's decision boundary and to the data:

- **Learning Loss** (Yoo & Kweon, CVPR 2019): the task learner and a loss
  prediction module are trained together; the query takes the highest
  predicted losses. The paper's claim: close to the boundary, but clustered.
- **VAAL** (Sinha et al., ICCV 2019): a β-VAE and a discriminator on its
  latent mean play a minimax game; the query takes the lowest ``D``. Claim:
  spread over the data, but often far from the boundary.
- **TA-VAAL** (Kim et al. 2021, Algorithm 1, Eqs. 1-7): VAAL with the VAE's decoder
  and the discriminator conditioned on the normalised loss rank
  ``r = sigmoid(R(x))`` of a ranker trained with the task learner. Claim:
  both close to the boundary and spread.

Run it with

  python experiments/two_moons.py

(flags: ``--seed`` (0), ``--stages`` (5), ``--epochs`` (100), ``--out``,
``--subset_factor`` (10), ``--task_lr`` (0.1), ``--beta`` (1)). It writes
``experiments/two_moons.png`` (three panels, like the paper's Fig. 1) and
prints the task learner's test accuracy per method and stage, then a table of
the last query's distance to the decision boundary and spread. What it
showed, and how long it took, is in ``experiments/README.md``.

Settings from the paper (Sec. 4.1):

- Data: ``sklearn.datasets.make_moons(n_samples=(500, 50), noise=0.2)``, 550
  points, class 0 ten times more frequent than class 1; the features are
  standardised (mean and standard deviation of the pool).
- Task learner: a 3-layer MLP, ``2 -> 64 -> 64 -> 2`` logits with ReLU, Adam,
  learning rate 0.1. The paper's 0.1 is the default and was kept: it trains
  stably here (full batch, a fresh model per stage), see the printed test
  accuracies; ``--task_lr`` changes it.
- Ranker / loss prediction module: "a single layer perceptron attached to the
  mid-layer of the task learner": ``Dense(1)`` on the 64 ReLU activations
  that the middle (second) layer outputs.
- VAE: encoder ``2 -> 32 -> (mu, logvar)`` and decoder ``(z[, r]) -> 32 -> 2``,
  each a 2-layer MLP with ReLU, a 2-dimensional latent; discriminator
  ``(r, mu) -> 32 -> 1`` logit. Adam, learning rate 0.01 for both.
- 100 epochs for every network; 20 random initial labels (the same 20 for all
  three methods), 10 more per stage; the figure shows stage 5: the 60 labels
  the stage trained on and the 10 points it queries.

Choices the paper leaves open (and those of the two baselines' settings that
a 2-D problem forces), made here:

- Losses are the library's: `jal.objectives.ranking.margin_ranking_loss`
  (margin 1, weight 1) for Learning Loss, `jal.objectives.ranking.pairwise_ranking_loss`
  (η = 1) for TA-VAAL; `jal.objectives.adversarial.vae_loss_terms`, `vae_adversarial_loss`
  (λ = 1) and `discriminator_loss` for the VAE and D; β = 1 on the per-example
  mean KL. With 2-D standardised data and a per-feature mean squared error,
  β = 1 makes the VAE collapse to its prior (reconstruction error about 0.95,
  the data's variance; ``mu`` varies by about 0.1): ``mu`` is still a
  deterministic function of ``x``, so D can still use it, but weakly.
  ``--beta=0.01`` gives a VAE that reconstructs (error about 0.02).
- Task learner training is full batch: one Adam step per epoch on the whole
  labeled pool, padded to the largest pool of the run with a mask so that
  every stage reuses one compiled step. The ranking losses pair example ``i``
  with ``B - 1 - i``; the pool is shuffled each epoch (new pairs) and laid out
  at both ends of the padded batch so that every pair is real.
- A fresh, identically initialised model per stage (as VAAL's reference
  code does); all methods share the initialisation and the batch order.
- Learning Loss: after 60% of the epochs the module's gradient no longer
  reaches the task learner (Yoo & Kweon: epoch 120 of 200); the module keeps
  learning.
- TA-VAAL, Algorithm 1 literally: the ranker is updated only in epochs
  ``n <= 0.8 N``; afterwards the task learner is still updated with
  ``L_T + η L_R`` (the frozen ranker's gradient reaches the mid-layer).
  ``r`` is recomputed for every point at the start of each epoch (before
  that epoch's task update), drawn from ``U(0, 1)`` in the first epoch, and is
  an input to the VAE and D (no gradient from them into the ranker).
- VAE and D: an epoch is one pass over the unlabeled pool in batches of 64
  (the last one padded and masked), each paired with the whole labeled pool;
  per batch one VAE step (``L_trans + λ L_adv``) then one D step (Algorithm 1's
  order). D sees the latent mean ``mu`` (as VAAL's reference code does), and
  ``r`` concatenated to it for TA-VAAL; the decoder sees ``[z, r]``.
- VAAL's task learner is trained on its own with plain cross-entropy and
  only evaluated (and draws the decision boundary).
- Queries: Learning Loss and TA-VAAL rank a random subset of the unlabeled
  pool 10 times the query size (100 points; the paper's "subset method",
  Sec. 3.3 and 4.2); VAAL ranks the whole unlabeled pool, as in its paper.
  ``--subset_factor=0`` makes all three rank the whole pool.
- Accuracy is measured on a fresh balanced test sample (500 + 500 moons,
  noise 0.2, another ``random_state``), standardised with the pool's
  statistics.
- Distance to the decision boundary: the Euclidean distance (standardised
  units) from a point to the nearest place on a 300 x 300 grid over the plot
  where the task learner's predicted class changes (midpoints between
  neighbouring grid points of different class); NaN when the learner
  predicts one class everywhere. Spread: the mean pairwise Euclidean distance
  between the queried points. For reference the table also gives both
  numbers for the whole candidate (unlabeled) pool, i.e. what a random query
  would get on average.

Everything is deterministic given ``--seed``: the data, the initial pool and
every batch order, subset and key derive from it (`jal.rng`).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from sklearn import datasets

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from jal import rng  # noqa: E402
from jal.objectives import adversarial, masked_mean, ranking  # noqa: E402

METHODS = ('learning_loss', 'vaal', 'ta_vaal')
TITLES = {'learning_loss': 'Learning Loss', 'vaal': 'VAAL', 'ta_vaal': 'TA-VAAL'}

MAJORITY, MINORITY = 500, 50
NOISE = 0.2
TEST_PER_CLASS = 500
INITIAL = 20
BUDGET = 10

WIDTH = 64            # task learner's hidden width
VAE_WIDTH = 32        # VAE and discriminator hidden width
LATENT = 2
UNLABELED_BATCH = 64

TASK_LR = 0.1
ADVERSARIAL_LR = 0.01
RANKING_WEIGHT = 1.0  # Learning Loss's lambda, TA-VAAL's eta
MARGIN = 1.0
BETA = 1.0
ADVERSARIAL_WEIGHT = 1.0  # VAAL's lambda
LL_DETACH_AFTER = 0.6
TA_VAAL_RANKER_EPOCHS = 0.8

GRID = 300

_ADAM = optax.scale_by_adam()


# ---------------------------------------------------------------------------- data


class Moons(NamedTuple):
  x: np.ndarray       # float32 [550, 2], standardised
  y: np.ndarray       # int32 [550]
  x_test: np.ndarray  # float32 [1000, 2], standardised with the pool's statistics
  y_test: np.ndarray  # int32 [1000]


def make_data(seed: int) -> Moons:
  """The imbalanced pool (500 + 50) and a balanced test sample (500 + 500)."""
  x, y = datasets.make_moons(n_samples=(MAJORITY, MINORITY), noise=NOISE, random_state=seed)
  x_test, y_test = datasets.make_moons(n_samples=(TEST_PER_CLASS, TEST_PER_CLASS), noise=NOISE,
                                       random_state=seed + 10_000)
  mean, std = x.mean(0), x.std(0)
  scale = lambda a: ((a - mean) / std).astype(np.float32)
  return Moons(scale(x), y.astype(np.int32), scale(x_test), y_test.astype(np.int32))


def paired_layout(indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """Lays ``n`` indices out at both ends of a padded batch of ``size``.

  The ranking losses pair position ``i`` with ``size - 1 - i``: with the first
  ``ceil(n / 2)`` indices at the front and the rest at the back, every pair
  of the first ``floor(n / 2)`` positions holds two real examples.

  Args:
    indices: int ``[n]``, ``n <= size``.
    size: the batch size.

  Returns:
    ``(idx [size], mask [size])``; padding rows point at example 0, mask 0.
  """
  n = len(indices)
  front, back = (n + 1) // 2, n // 2
  idx, mask = np.zeros(size, np.int32), np.zeros(size, np.float32)
  idx[:front], mask[:front] = indices[:front], 1.0
  idx[size - back:], mask[size - back:] = indices[front:], 1.0
  return idx, mask


def padded(indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
  """``indices`` followed by padding (example 0, mask 0) up to ``size``."""
  idx, mask = np.zeros(size, np.int32), np.zeros(size, np.float32)
  idx[:len(indices)], mask[:len(indices)] = indices, 1.0
  return idx, mask


def unlabeled_batches(generator: np.random.Generator, unlabeled: np.ndarray, batch: int):
  """One shuffled pass over the unlabeled pool, in padded batches of ``batch``."""
  order = generator.permutation(unlabeled)
  return [padded(order[i:i + batch], batch) for i in range(0, len(order), batch)]


# -------------------------------------------------------------------------- models


class TaskLearner(nn.Module):
  """The 3-layer MLP; returns the logits and the middle layer's activations."""

  @nn.compact
  def __call__(self, x):
    hidden = nn.relu(nn.Dense(WIDTH)(x))
    hidden = nn.relu(nn.Dense(WIDTH)(hidden))
    return nn.Dense(2)(hidden), hidden


class Ranker(nn.Module):
  """The single-layer perceptron on the mid-layer: a predicted loss (rank) per example."""

  @nn.compact
  def __call__(self, hidden):
    return nn.Dense(1)(hidden)[:, 0]


class VAE(nn.Module):
  """2-layer MLP encoder and decoder; the decoder also takes the condition ``r``."""

  def setup(self):
    self.encoder_hidden = nn.Dense(VAE_WIDTH)
    self.encoder_out = nn.Dense(2 * LATENT)
    self.decoder_hidden = nn.Dense(VAE_WIDTH)
    self.decoder_out = nn.Dense(2)

  def encode(self, x):
    stats = self.encoder_out(nn.relu(self.encoder_hidden(x)))
    return stats[:, :LATENT], stats[:, LATENT:]

  def __call__(self, x, condition, noise):
    mu, logvar = self.encode(x)
    z = mu + jnp.exp(0.5 * logvar) * noise
    hidden = nn.relu(self.decoder_hidden(jnp.concatenate([z, condition], -1)))
    return self.decoder_out(hidden), mu, logvar


class Discriminator(nn.Module):
  """2-layer MLP on ``[r, mu]``: the logit of "labeled"."""

  @nn.compact
  def __call__(self, condition, mu):
    hidden = nn.relu(nn.Dense(VAE_WIDTH)(jnp.concatenate([condition, mu], -1)))
    return nn.Dense(1)(hidden)[:, 0]


TASK, RANKER, VAE_MODEL, DISCRIMINATOR = TaskLearner(), Ranker(), VAE(), Discriminator()


def _adam(params, grads, opt_state, lr):
  updates, opt_state = _ADAM.update(grads, opt_state, params)
  return jax.tree.map(lambda p, u: p - lr * u, params, updates), opt_state


def _select(flag, new, old):
  return jax.tree.map(lambda a, b: jnp.where(flag, a, b), new, old)


def init_task(key: jax.Array) -> dict[str, Any]:
  """Task learner and ranker parameters with their Adam states."""
  task_key, ranker_key = jax.random.split(key)
  task = TASK.init(task_key, jnp.zeros((1, 2)))
  ranker = RANKER.init(ranker_key, jnp.zeros((1, WIDTH)))
  return {'task': task, 'ranker': ranker, 'opt_task': _ADAM.init(task),
          'opt_ranker': _ADAM.init(ranker)}


def init_adversarial(key: jax.Array, condition_dim: int) -> dict[str, Any]:
  """VAE and discriminator parameters, their Adam states and the noise key."""
  vae_key, disc_key, noise_key = jax.random.split(key, 3)
  condition = jnp.zeros((1, condition_dim))
  vae = VAE_MODEL.init(vae_key, jnp.zeros((1, 2)), condition, jnp.zeros((1, LATENT)))
  disc = DISCRIMINATOR.init(disc_key, condition, jnp.zeros((1, LATENT)))
  return {'vae': vae, 'disc': disc, 'opt_vae': _ADAM.init(vae), 'opt_disc': _ADAM.init(disc),
          'key': noise_key}


# --------------------------------------------------------------------- train steps


_RANKING_LOSSES = {
    'margin': functools.partial(ranking.margin_ranking_loss, margin=MARGIN),
    'pairwise': ranking.pairwise_ranking_loss,
}


@functools.partial(jax.jit, static_argnames='ranking')
def task_step(state, x, y, idx, mask, lr, detach, update_ranker, *, ranking):
  """One Adam step of ``L_task + weight * L_rank`` on a padded batch.

  Args:
    state: `init_task`'s dict.
    x: float ``[N, 2]``, all points; y: int ``[N]``.
    idx: int ``[B]`` rows of the batch; mask: float ``[B]``.
    lr: the learning rate.
    detach: bool scalar; no gradient from the ranker into the task learner.
    update_ranker: bool scalar; False freezes the ranker and its Adam state.
    ranking: None (cross-entropy only), ``'margin'`` or ``'pairwise'``.

  Returns:
    The new state and ``{'task_loss'[, 'ranking_loss']}`` (on the last step).
  """
  x, y = x[idx], y[idx]

  def loss_fn(task, ranker):
    logits, hidden = TASK.apply(task, x)
    per_example = optax.softmax_cross_entropy_with_integer_labels(logits, y)
    task_loss = masked_mean(per_example, mask)
    if ranking is None:
      return task_loss, (task_loss, jnp.zeros(()))
    hidden = jnp.where(detach, jax.lax.stop_gradient(hidden), hidden)
    rank_loss = _RANKING_LOSSES[ranking](RANKER.apply(ranker, hidden), per_example, mask)
    return task_loss + RANKING_WEIGHT * rank_loss, (task_loss, rank_loss)

  (task_grads, ranker_grads), (task_loss, rank_loss) = jax.grad(
      loss_fn, argnums=(0, 1), has_aux=True)(state['task'], state['ranker'])
  task, opt_task = _adam(state['task'], task_grads, state['opt_task'], lr)
  ranker, opt_ranker = _adam(state['ranker'], ranker_grads, state['opt_ranker'], lr)
  ranker, opt_ranker = _select(update_ranker, (ranker, opt_ranker),
                               (state['ranker'], state['opt_ranker']))
  new = {'task': task, 'ranker': ranker, 'opt_task': opt_task, 'opt_ranker': opt_ranker}
  metrics = {'task_loss': task_loss}
  if ranking is not None:
    metrics['ranking_loss'] = rank_loss
  return new, metrics


@jax.jit
def adversarial_step(state, x, condition, idx_l, mask_l, idx_u, mask_u, lr, beta):
  """One VAE step (``L_trans + λ L_adv``, Eqs. 4-5), then one D step (Eq. 6).

  Args:
    state: `init_adversarial`'s dict.
    x: float ``[N, 2]``, all points.
    condition: float ``[N, k]``: ``r`` for TA-VAAL (``k = 1``), nothing for
      VAAL (``k = 0``).
    idx_l, mask_l: the padded labeled batch; idx_u, mask_u: the unlabeled one.
    lr: the learning rate of both.
    beta: the weight of the KL terms.

  Returns:
    The new state and ``{'vae_loss', 'disc_loss', 'disc_accuracy'}``.
  """
  key, key_l, key_u = jax.random.split(state['key'], 3)
  x_l, x_u, c_l, c_u = x[idx_l], x[idx_u], condition[idx_l], condition[idx_u]
  disc = state['disc']

  noise_l = jax.random.normal(key_l, (len(x_l), LATENT))
  noise_u = jax.random.normal(key_u, (len(x_u), LATENT))

  def vae_loss_fn(vae):
    rec_l, mu_l, logvar_l = VAE_MODEL.apply(vae, x_l, c_l, noise_l)
    rec_u, mu_u, logvar_u = VAE_MODEL.apply(vae, x_u, c_u, noise_u)
    terms_l = adversarial.vae_loss_terms(x_l, rec_l, mu_l, logvar_l, mask_l)
    terms_u = adversarial.vae_loss_terms(x_u, rec_u, mu_u, logvar_u, mask_u)
    transductive = (terms_l['reconstruction'] + beta * terms_l['kl']
                    + terms_u['reconstruction'] + beta * terms_u['kl'])
    adv = adversarial.vae_adversarial_loss(DISCRIMINATOR.apply(disc, c_l, mu_l),
                                           DISCRIMINATOR.apply(disc, c_u, mu_u), mask_l, mask_u)
    return transductive + ADVERSARIAL_WEIGHT * adv

  vae_loss, vae_grads = jax.value_and_grad(vae_loss_fn)(state['vae'])
  vae, opt_vae = _adam(state['vae'], vae_grads, state['opt_vae'], lr)
  encode = lambda v: VAE_MODEL.apply(vae, v, method=VAE.encode)[0]
  mu_l, mu_u = encode(x_l), encode(x_u)

  def disc_loss_fn(disc):
    logits_l, logits_u = DISCRIMINATOR.apply(disc, c_l, mu_l), DISCRIMINATOR.apply(disc, c_u, mu_u)
    loss = adversarial.discriminator_loss(logits_l, logits_u, mask_l, mask_u)
    return loss, adversarial.discriminator_accuracy(logits_l, logits_u, mask_l, mask_u)

  (disc_loss, disc_accuracy), disc_grads = jax.value_and_grad(disc_loss_fn, has_aux=True)(disc)
  disc, opt_disc = _adam(disc, disc_grads, state['opt_disc'], lr)
  new = {'vae': vae, 'disc': disc, 'opt_vae': opt_vae, 'opt_disc': opt_disc, 'key': key}
  return new, {'vae_loss': vae_loss, 'disc_loss': disc_loss, 'disc_accuracy': disc_accuracy}


@jax.jit
def class_one_probability(task, x):
  """``p(class 1 | x)`` of the task learner, float ``[N]``."""
  return jax.nn.softmax(TASK.apply(task, x)[0], -1)[:, 1]


@jax.jit
def predicted_loss(state, x):
  """The ranker's output ``R(x)`` (the predicted loss, up to a monotone map), ``[N]``."""
  return RANKER.apply(state['ranker'], TASK.apply(state['task'], x)[1])


@jax.jit
def labeled_probability(adv, x, condition):
  """``D(r, mu(x))``: the discriminator's probability that ``x`` is labeled, ``[N]``."""
  mu = VAE_MODEL.apply(adv['vae'], x, method=VAE.encode)[0]
  return jax.nn.sigmoid(DISCRIMINATOR.apply(adv['disc'], condition, mu))


# ----------------------------------------------------------------------- one stage


def train_stage(method: str, moons: Moons, labeled: np.ndarray, unlabeled: np.ndarray, *,
                seed: int, stage: int, epochs: int, batch_size: int, task_lr: float,
                beta: float):
  """Trains one method's networks from scratch on the current pools.

  Returns:
    ``(task_state, adversarial_state or None, condition [N, k] or None, metrics)``.
  """
  x, y = jnp.asarray(moons.x), jnp.asarray(moons.y)
  task = init_task(rng.key(seed, 'task_init', stage))
  ranking = {'learning_loss': 'margin', 'vaal': None, 'ta_vaal': 'pairwise'}[method]
  task_batches = rng.numpy_rng(seed, 'task_batches', stage)
  adv = condition = None
  metrics = {}
  if method != 'learning_loss':
    condition_dim = 1 if method == 'ta_vaal' else 0
    adv = init_adversarial(rng.key(seed, 'adversarial_init', stage), condition_dim)
    condition = jnp.zeros((len(moons.x), 0))
    u_batches = rng.numpy_rng(seed, 'unlabeled_batches', stage)
    idx_l, mask_l = padded(labeled, batch_size)
  for epoch in range(epochs):
    if method == 'ta_vaal':  # Algorithm 1: r from U(0, 1) at n = 1, else r = sigmoid(R(x)).
      condition = (jax.random.uniform(rng.key(seed, 'uniform_rank', stage), (len(moons.x), 1))
                   if epoch == 0 else jax.nn.sigmoid(predicted_loss(task, x))[:, None])
    idx, mask = paired_layout(task_batches.permutation(labeled), batch_size)
    task, metrics = task_step(
        task, x, y, idx, mask, task_lr,
        detach=method == 'learning_loss' and epoch >= LL_DETACH_AFTER * epochs,
        update_ranker=method != 'ta_vaal' or epoch + 1 <= TA_VAAL_RANKER_EPOCHS * epochs,
        ranking=ranking)
    if adv is not None:
      for idx_u, mask_u in unlabeled_batches(u_batches, unlabeled, UNLABELED_BATCH):
        adv, adv_metrics = adversarial_step(adv, x, condition, idx_l, mask_l, idx_u, mask_u,
                                            ADVERSARIAL_LR, beta)
      metrics = {**metrics, **adv_metrics}
  if method == 'ta_vaal':  # the query uses the final ranker's r
    condition = jax.nn.sigmoid(predicted_loss(task, x))[:, None]
  return task, adv, condition, {k: float(v) for k, v in metrics.items()}


def query(method: str, task, adv, condition, moons: Moons, unlabeled: np.ndarray, *,
          generator: np.random.Generator, subset_factor: int) -> np.ndarray:
  """The ``BUDGET`` unlabeled points a method selects (Learning Loss: highest ``R``;
  VAAL, TA-VAAL: lowest ``D``), from a random subset of ``subset_factor * BUDGET``
  candidates for Learning Loss and TA-VAAL (the whole pool if 0 or larger)."""
  candidates = unlabeled
  if method != 'vaal' and 0 < subset_factor * BUDGET < len(unlabeled):
    candidates = generator.choice(unlabeled, subset_factor * BUDGET, replace=False)
  x = jnp.asarray(moons.x)
  if method == 'learning_loss':
    score = -np.asarray(predicted_loss(task, x))
  else:
    score = np.asarray(labeled_probability(adv, x, condition))
  order = np.argsort(score[candidates], kind='stable')
  return np.sort(candidates[order[:BUDGET]])


# ------------------------------------------------------------------------- metrics


def make_grid(moons: Moons) -> tuple[np.ndarray, np.ndarray]:
  """The ``GRID x GRID`` plot grid over the pool (margin 0.4): (xs, ys)."""
  low, high = moons.x.min(0) - 0.4, moons.x.max(0) + 0.4
  return np.linspace(low[0], high[0], GRID), np.linspace(low[1], high[1], GRID)


def grid_points(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
  gx, gy = np.meshgrid(xs, ys)
  return np.stack([gx.ravel(), gy.ravel()], -1).astype(np.float32)


def boundary_points(xs: np.ndarray, ys: np.ndarray, probability: np.ndarray) -> np.ndarray:
  """Midpoints between horizontally or vertically adjacent grid points whose
  predicted class differs; ``probability`` is ``[len(ys), len(xs)]``."""
  cls = probability > 0.5
  rows, cols = np.nonzero(cls[:, 1:] != cls[:, :-1])
  horizontal = np.stack([(xs[cols] + xs[cols + 1]) / 2, ys[rows]], -1)
  rows, cols = np.nonzero(cls[1:, :] != cls[:-1, :])
  vertical = np.stack([xs[cols], (ys[rows] + ys[rows + 1]) / 2], -1)
  return np.concatenate([horizontal, vertical])


def boundary_distance(points: np.ndarray, boundary: np.ndarray) -> np.ndarray:
  """Each point's distance to the nearest boundary point (NaN if there is none)."""
  if len(boundary) == 0:
    return np.full(len(points), np.nan)
  return np.sqrt(((points[:, None, :] - boundary[None]) ** 2).sum(-1)).min(1)


def spread(points: np.ndarray) -> float:
  """The mean pairwise Euclidean distance between ``points`` [n, 2]."""
  distances = np.sqrt(((points[:, None, :] - points[None]) ** 2).sum(-1))
  n = len(points)
  return float(distances.sum() / max(n * (n - 1), 1))


# ------------------------------------------------------------------------ the loop


def run_method(method: str, moons: Moons, initial: np.ndarray, grid: np.ndarray, *, seed: int,
               stages: int, epochs: int, subset_factor: int, task_lr: float,
               beta: float) -> list[dict]:
  """All stages of one method; a record per stage."""
  batch_size = INITIAL + BUDGET * (stages - 1)
  batch_size += batch_size % 2
  labeled = np.sort(initial)
  records = []
  for stage in range(1, stages + 1):
    unlabeled = np.setdiff1d(np.arange(len(moons.x)), labeled)
    task, adv, condition, metrics = train_stage(
        method, moons, labeled, unlabeled, seed=seed, stage=stage, epochs=epochs,
        batch_size=batch_size, task_lr=task_lr, beta=beta)
    test_probability = np.asarray(class_one_probability(task['task'], jnp.asarray(moons.x_test)))
    accuracy = float(np.mean((test_probability > 0.5) == moons.y_test))
    chosen = query(method, task, adv, condition, moons, unlabeled,
                   generator=rng.numpy_rng(seed, 'query_subset', stage),
                   subset_factor=subset_factor)
    records.append({
        'stage': stage, 'labeled': labeled, 'unlabeled': unlabeled, 'query': chosen,
        'accuracy': accuracy, 'metrics': metrics,
        'grid_probability': np.asarray(class_one_probability(task['task'], jnp.asarray(grid))),
    })
    labeled = np.sort(np.concatenate([labeled, chosen]))
  return records


def summarise(record: dict, moons: Moons, xs: np.ndarray, ys: np.ndarray) -> dict:
  """Distance to the boundary and spread of a stage's query and of its candidate pool."""
  boundary = boundary_points(xs, ys, record['grid_probability'].reshape(len(ys), len(xs)))
  query_points, pool_points = moons.x[record['query']], moons.x[record['unlabeled']]
  return {
      'query_distance': float(np.mean(boundary_distance(query_points, boundary))),
      'pool_distance': float(np.mean(boundary_distance(pool_points, boundary))),
      'query_spread': spread(query_points),
      'pool_spread': spread(pool_points),
      'query_minority': int(np.sum(moons.y[record['query']] == 1)),
  }


# ------------------------------------------------------------------------- figure


def plot(results: dict, summaries: dict, moons: Moons, xs: np.ndarray, ys: np.ndarray,
         out: str) -> None:
  """Three panels like the paper's Fig. 1, at the last stage."""
  colors = np.array(['tab:blue', 'tab:orange'])
  width = 4.4
  height = width * (ys[-1] - ys[0]) / (xs[-1] - xs[0])
  fig, axes = plt.subplots(1, len(results), figsize=(width * len(results), height + 1.3),
                           squeeze=False)
  gx, gy = np.meshgrid(xs, ys)
  for ax, (method, records) in zip(axes[0], results.items()):
    record, summary = records[-1], summaries[method]
    probability = record['grid_probability'].reshape(len(ys), len(xs))
    ax.contourf(gx, gy, probability, levels=[0.0, 0.5, 1.0], colors=['#dce8f5', '#fde3cc'])
    if probability.min() < 0.5 < probability.max():
      ax.contour(gx, gy, probability, levels=[0.5], colors='k', linewidths=1.5)
    rest = np.setdiff1d(record['unlabeled'], record['query'])
    ax.scatter(*moons.x[rest].T, c=colors[moons.y[rest]], s=9, alpha=0.45, linewidths=0)
    labeled = record['labeled']
    ax.scatter(*moons.x[labeled].T, c=colors[moons.y[labeled]], s=46, marker='s',
               edgecolors='k', linewidths=0.9)
    chosen = record['query']
    ax.scatter(*moons.x[chosen].T, c='#d62728', s=260, marker='*', edgecolors='k',
               linewidths=0.9, zorder=5)
    ax.set_title(f'{TITLES[method]} (stage {record["stage"]})\n'
                 f'query: dist. to boundary {summary["query_distance"]:.2f}, '
                 f'spread {summary["query_spread"]:.2f}\n'
                 f'test accuracy {record["accuracy"]:.3f}', fontsize=10)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect('equal')
    ax.set_xticks([])
    ax.set_yticks([])
  handles = [
      plt.Line2D([], [], ls='', marker='o', color='tab:blue', label=f'class 0 ({MAJORITY})'),
      plt.Line2D([], [], ls='', marker='o', color='tab:orange', label=f'class 1 ({MINORITY})'),
      plt.Line2D([], [], ls='', marker='s', mfc='w', mec='k', label='labeled pool'),
      plt.Line2D([], [], ls='', marker='*', ms=14, mfc='#d62728', mec='k', label='queried'),
      plt.Line2D([], [], color='k', label='decision boundary'),
  ]
  fig.legend(handles=handles, loc='lower center', ncol=len(handles), frameon=False)
  fig.tight_layout(rect=(0, 0.05, 1, 1))
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out, dpi=110, bbox_inches='tight', pad_inches=0.1)
  plt.close(fig)


# --------------------------------------------------------------------------- main


def run(seed: int = 0, stages: int = 5, epochs: int = 100, out: str | None = None,
        subset_factor: int = 10, task_lr: float = TASK_LR, beta: float = BETA,
        verbose: bool = True) -> dict:
  """Runs the three methods, prints their accuracies and the query table, writes the figure.

  Returns:
    ``{'results': {method: [record per stage]}, 'summaries': {method: dict},
    'initial': int [INITIAL], 'out': path}``.
  """
  if stages < 1 or epochs < 1:
    raise ValueError(f'stages ({stages}) and epochs ({epochs}) must be at least 1')
  out = out or os.path.join(os.path.dirname(os.path.abspath(__file__)), 'two_moons.png')
  log = print if verbose else (lambda *a, **k: None)
  moons = make_data(seed)
  initial = np.sort(rng.numpy_rng(seed, 'initial_pool').choice(len(moons.x), INITIAL,
                                                               replace=False))
  log(f'two moons: {MAJORITY} + {MINORITY} points, initial pool {INITIAL} '
      f'({int(moons.y[initial].sum())} of class 1), +{BUDGET} per stage, {stages} stages, '
      f'{epochs} epochs')
  xs, ys = make_grid(moons)
  grid = grid_points(xs, ys)
  results = {}
  for method in METHODS:
    start = time.perf_counter()
    results[method] = run_method(method, moons, initial, grid, seed=seed, stages=stages,
                                 epochs=epochs, subset_factor=subset_factor, task_lr=task_lr,
                                 beta=beta)
    for r in results[method]:
      extra = ''.join(f' {k} {v:.3f}' for k, v in r['metrics'].items())
      log(f'  {TITLES[method]:13s} stage {r["stage"]}: {len(r["labeled"])} labeled, '
          f'test acc {r["accuracy"]:.3f}, queried {int(moons.y[r["query"]].sum())} of class 1;'
          f'{extra}')
    log(f'  {TITLES[method]}: {time.perf_counter() - start:.1f} s')
  summaries = {m: summarise(records[-1], moons, xs, ys) for m, records in results.items()}

  log('\ntest accuracy (balanced 500 + 500) per stage:')
  log(f'  {"labeled":13s}' + ''.join(f'{len(r["labeled"]):>7d}' for r in results[METHODS[0]]))
  for method, records in results.items():
    log(f'  {TITLES[method]:13s}' + ''.join(f'{r["accuracy"]:7.3f}' for r in records))
  log(f'\nstage-{stages} query ({BUDGET} points); distance to the task learner\'s boundary '
      '(grid estimate) and spread (mean pairwise distance), standardised units; '
      '"pool" = the whole unlabeled pool, i.e. a random query\'s expectation:')
  log(f'  {"method":13s} {"test acc":>8s} {"dist query":>10s} {"dist pool":>9s} '
      f'{"spread query":>12s} {"spread pool":>11s} {"class 1":>7s}')
  for method, s in summaries.items():
    log(f'  {TITLES[method]:13s} {results[method][-1]["accuracy"]:8.3f} '
        f'{s["query_distance"]:10.3f} {s["pool_distance"]:9.3f} {s["query_spread"]:12.3f} '
        f'{s["pool_spread"]:11.3f} {s["query_minority"]:7d}')
  plot(results, summaries, moons, xs, ys, out)
  log(f'\nwrote {out}')
  return {'results': results, 'summaries': summaries, 'initial': initial, 'out': out}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--seed', type=int, default=0, help='data, initial pool and all randomness')
  parser.add_argument('--stages', type=int, default=5, help='training + query stages')
  parser.add_argument('--epochs', type=int, default=100, help='epochs of every network per stage')
  parser.add_argument('--out', default=None, help='the PNG (default experiments/two_moons.png)')
  parser.add_argument('--subset_factor', type=int, default=10,
                      help='Learning Loss and TA-VAAL rank a random subset of this many times '
                      'the query size (0: the whole unlabeled pool)')
  parser.add_argument('--task_lr', type=float, default=TASK_LR, help="the task learner's Adam lr")
  parser.add_argument('--beta', type=float, default=BETA, help="the VAE's KL weight")
  return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
  """Parses the flags and runs; returns `run`'s result."""
  args = parse_args(argv)
  start = time.perf_counter()
  result = run(seed=args.seed, stages=args.stages, epochs=args.epochs, out=args.out,
               subset_factor=args.subset_factor, task_lr=args.task_lr, beta=args.beta)
  print(f'total {time.perf_counter() - start:.1f} s')
  return result


if __name__ == '__main__':
  main(sys.argv[1:])
