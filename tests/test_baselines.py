"""Tests of the baselines of issue 4: MC dropout (BALD, DBAL), ensembles,
Learning Loss, and a one-round run of every strategy.

The references are NumPy transcriptions of the papers' equations, written with
explicit loops, not from the JAX code.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from jal import experiment, strategies
from jal.acquisition import uncertainty
from jal.models import ClassifierHead, Ensemble, LossPredictionHead, MultiHeadNet, get_backbone
from jal.objectives import Batch, ranking as losses
from jal.objectives.classification import cross_entropy_loss, ensemble_loss
from jal.strategies import mc_dropout as _mc_dropout


def _softmax(z):
  z = np.asarray(z, np.float64)
  with np.errstate(invalid='ignore'):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def _entropy(p):
  return -sum(p_c * np.log(p_c) for p_c in p if p_c > 0)


def _reference_scores(logits):
  """BALD (Gal et al. 2017, Sec. 3; paper 002, Eq. 8), DBAL's max-entropy of the
  averaged prediction, and the variation ratio (Beluch et al. 2018, Eq. 1)."""
  batch, samples, classes = logits.shape
  bald, max_entropy, variation = [], [], []
  for b in range(batch):
    p = [_softmax(logits[b, t]) for t in range(samples)]
    mean = sum(p) / samples
    max_entropy.append(_entropy(mean))
    bald.append(_entropy(mean) - sum(_entropy(q) for q in p) / samples)
    votes = [int(np.argmax(logits[b, t])) for t in range(samples)]
    variation.append(1.0 - max(votes.count(c) for c in range(classes)) / samples)
  return np.array(bald), np.array(max_entropy), np.array(variation)


# Random samples; samples that all agree (BALD 0); a one-hot that flips between
# samples (p = 0 and 1: BALD log 2); a class of probability 0 in every sample;
# a three-way vote split; identical uniform samples.
_RNG = np.random.default_rng(0)
_SAMPLES = np.concatenate([
    _RNG.normal(size=(4, 3, 4)) * 3,
    np.broadcast_to(_RNG.normal(size=(1, 1, 4)), (1, 3, 4)),
    [[[400, 0, 0, 0], [0, 400, 0, 0], [400, 0, 0, 0]]],
    [[[-np.inf, 1, 0, 0], [-np.inf, 0, 1, 0], [-np.inf, 0, 0, 1]]],
    [[[3, 0, 0, 0], [0, 3, 0, 0], [0, 0, 3, 0]]],
    np.zeros((1, 3, 4)),
]).astype(np.float32)


def test_bald_dbal_and_variation_ratio_match_the_equations():
  got = [np.asarray(jax.jit(f)(jnp.asarray(_SAMPLES)))
         for f in (uncertainty.bald, uncertainty.predictive_entropy, uncertainty.variation_ratio)]
  for value, want in zip(got, _reference_scores(_SAMPLES)):
    chex.assert_shape(value, (_SAMPLES.shape[0],))
    assert value.dtype == np.float32 and np.isfinite(value).all()
    np.testing.assert_allclose(value, want, atol=2e-6)
  bald, max_entropy, variation = got
  assert bald[4] == pytest.approx(0.0, abs=1e-6) and bald[8] == pytest.approx(0.0, abs=1e-6)
  assert bald[5] == pytest.approx(2 / 3 * np.log(3 / 2) + 1 / 3 * np.log(3), abs=1e-5)
  assert max_entropy[8] == pytest.approx(np.log(4), abs=1e-6)
  np.testing.assert_allclose(variation[4:], [0, 1 / 3, 2 / 3, 2 / 3, 0], atol=1e-7)


def test_log_mean_probabilities_is_the_log_of_the_average():
  got = np.asarray(uncertainty.log_mean_probabilities(jnp.asarray(_SAMPLES)))
  want = np.mean([[_softmax(s) for s in row] for row in _SAMPLES], axis=1)
  np.testing.assert_allclose(np.exp(got), want, atol=1e-6)
  assert np.isneginf(got[6, 0])  # probability 0 in every sample stays -inf, not NaN


# -------------------------------------------------------------------- ranking losses


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
  # Eq. 1 of paper 004: pair (0, 4) has I = 1, d = 2: -log sigma(2);
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


# ---------------------------------------------------------------------- MC dropout


def _dropout_net(last_layer=False):
  backbone = get_backbone('small_cnn', width=4, dropout_rate=0.0 if last_layer else 0.3)
  head = ClassifierHead(3, dropout_rate=0.3 if last_layer else 0.0)
  return MultiHeadNet(backbone, {'classifier': head})


@pytest.mark.parametrize('last_layer', [False, True])
def test_dropout_is_on_across_mc_samples_and_off_in_evaluation(last_layer):
  model = _dropout_net(last_layer)
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))
  # Evaluation (no dropout stream) is deterministic, and equals the network
  # without dropout layers (inverted dropout: no rescaling at test time).
  plain = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  evaluated = jax.jit(lambda v: model.apply(v, x, train=False)['classifier'])(variables)
  chex.assert_trees_all_close(
      evaluated, jax.jit(lambda v: plain.apply(v, x, train=False)['classifier'])(variables))
  sampler = _mc_dropout.mc_logits_last_layer if last_layer else _mc_dropout.mc_logits
  sample = jax.jit(lambda v, x, k: sampler(model, v, x, k))
  logits = sample(variables, x, jax.random.split(jax.random.key(2), 5))
  chex.assert_shape(logits, (6, 5, 3))
  # Every pass differs from the others and from evaluation.
  for t in range(5):
    assert not np.allclose(logits[:, t], evaluated, atol=1e-4)
    for u in range(t):
      assert not np.allclose(logits[:, t], logits[:, u], atol=1e-4)
  # The same keys: the same samples.
  again = sample(variables, x, jax.random.split(jax.random.key(2), 5))
  chex.assert_trees_all_close(again, logits, atol=1e-5)


def test_training_uses_dropout_but_the_task_loss_is_deterministic_per_key():
  model = _dropout_net()
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))
  loss = lambda k: cross_entropy_loss(model.apply, variables,
                                      Batch(x, jnp.zeros(6, jnp.int32), jnp.ones(6)), k, 0.0)[0]
  assert float(loss(jax.random.key(3))) == float(loss(jax.random.key(3)))
  assert float(loss(jax.random.key(3))) != float(loss(jax.random.key(4)))


# ----------------------------------------------------------------------- ensembles


@pytest.mark.parametrize('vectorize', [False, True])
def test_ensemble_members_differ_and_the_prediction_is_their_average(vectorize):
  member = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  model = Ensemble(member, 3, vectorize=vectorize)
  x = jax.random.normal(jax.random.key(0), (5, 8, 8, 1))
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))
  kernels = variables['params']['heads_classifier']['fc']['kernel']
  chex.assert_shape(kernels, (3, 16, 3))
  assert not np.allclose(kernels[0], kernels[1]) and not np.allclose(kernels[1], kernels[2])
  outputs = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
  chex.assert_shape(outputs['members'], (5, 3, 3))
  chex.assert_shape(outputs['classifier'], (5, 3))
  chex.assert_shape(outputs['features'], (5, 48))
  members = np.asarray(outputs['members'])
  assert not np.allclose(members[:, 0], members[:, 1], atol=1e-4)
  # Each member is the member network with its own slice of the variables.
  apply_member = jax.jit(lambda v: member.apply(v, x, train=False)['classifier'])
  for m in range(3):
    own = jax.tree.map(lambda v: v[m], variables)
    chex.assert_trees_all_close(apply_member(own), members[:, m], atol=1e-5)
  want = np.log(np.mean([_softmax(members[:, m]) for m in range(3)], axis=0))
  np.testing.assert_allclose(outputs['classifier'], want, atol=1e-5)


def test_ensemble_loss_trains_each_member_on_its_own_cross_entropy():
  member = MultiHeadNet(get_backbone('small_cnn', width=4), {'classifier': ClassifierHead(3)})
  model = Ensemble(member, 2)
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  labels = jnp.array([0, 1, 2, 0])
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))

  def loss_of(params):
    return ensemble_loss(model.apply, {**variables, 'params': params},
                         Batch(x, labels, jnp.ones(4)), jax.random.key(0), 0.0)[0]

  grads = jax.jit(jax.grad(loss_of))(variables['params'])
  # The gradient of member 0 is the gradient of member 0's loss alone.
  own = jax.tree.map(lambda v: v[0], variables)

  def member_loss(params):
    import optax
    out, _ = member.apply({**own, 'params': params}, x, train=True, mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(out['classifier'], labels).mean()

  chex.assert_trees_all_close(jax.tree.map(lambda g: g[0], grads),
                              jax.jit(jax.grad(member_loss))(own['params']), atol=1e-5)


# ------------------------------------------------------------------ Learning Loss


def _loss_prediction_net():
  return MultiHeadNet(get_backbone('small_cnn', width=4),
                      {'classifier': ClassifierHead(3), 'loss_prediction': LossPredictionHead(8)})


def test_loss_prediction_module_shapes_and_gradient_stop():
  model = _loss_prediction_net()
  x = jax.random.normal(jax.random.key(0), (4, 8, 8, 1))
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))
  head = variables['params']['heads_loss_prediction']
  assert sorted(head) == ['block1_fc', 'block2_fc', 'block3_fc', 'fc']
  chex.assert_shape(head['block3_fc']['kernel'], (16, 8))  # GAP of the 16-channel block
  chex.assert_shape(head['fc']['kernel'], (24, 1))  # three blocks x 8 units

  def prediction_sum(params, stop):
    out = model.apply({**variables, 'params': params}, x, train=False,
                      head_args={'loss_prediction': {'stop_gradient': stop}})
    chex.assert_shape(out['loss_prediction'], (4,))
    return jnp.sum(out['loss_prediction'])

  grad = jax.jit(jax.grad(prediction_sum))  # stop is traced: one compilation
  for stop, backbone_moves in ((False, True), (True, False)):
    grads = grad(variables['params'], jnp.bool_(stop))
    norm = sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads['backbone']))
    assert (norm > 0) == backbone_moves
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree.leaves(grads['heads_loss_prediction']))


def test_learning_loss_objective_detaches_the_backbone_after_the_given_progress():
  import functools
  model = _loss_prediction_net()
  x = jax.random.normal(jax.random.key(0), (6, 8, 8, 1))
  labels, mask = jnp.array([0, 1, 2, 0, 1, 2]), jnp.ones(6)
  variables = jax.jit(lambda k: model.init({'params': k}, x, train=False))(jax.random.key(1))
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


# ------------------------------------------------- one round of every strategy


_BASELINES = ['least_confidence', 'margin', 'bald', 'dbal', 'bald_last_layer', 'dbal_last_layer',
              'ensemble_varratio', 'ensemble_entropy', 'ensemble_least_confidence',
              'ensemble_margin', 'learning_loss', 'learning_loss_v2']


def test_every_baseline_is_registered():
  assert set(_BASELINES) <= set(strategies.available())


@pytest.mark.parametrize('name', _BASELINES)
def test_one_round_of_each_baseline(tmp_path, name):
  config = tiny_config(name, **{'strategy.mc_dropout.num_mc_samples': 4,
                                'strategy.ensemble.num_members': 2, 'train.epochs': 1})
  records = experiment.run(config, str(tmp_path))
  assert [r['query_size'] for r in records] == [20, 0]
  assert all(np.isfinite(r['train_loss']) and 0 <= r['test_accuracy'] <= 1 for r in records)
  metrics = records[0]['train_metrics']
  assert metrics['loss'] == records[0]['train_loss'] and 0 <= metrics['accuracy'] <= 1
  if name.startswith('learning_loss'):  # the two terms of L = L_task + lambda L_rank
    assert metrics['loss'] == pytest.approx(metrics['task_loss'] + metrics['ranking_loss'],
                                            rel=1e-5)


@pytest.mark.parametrize('overrides,message', [
    ({'strategy.mc_dropout.dropout_rate': 1.0}, 'dropout_rate=1.0 must be in'),
    ({'strategy.mc_dropout.num_mc_samples': 1}, 'num_mc_samples=1'),
    ({'strategy.ensemble.num_members': 1}, 'num_members=1 must be at least 2'),
    ({'strategy.learning_loss.detach_after': 1.5}, 'detach_after=1.5'),
])
def test_bad_baseline_hyperparameters_give_one_line_errors(tmp_path, overrides, message):
  from jal.errors import JalError
  name = {'strategy.ensemble.num_members': 'ensemble_entropy',
          'strategy.learning_loss.detach_after': 'learning_loss'}.get(next(iter(overrides)), 'bald')
  with pytest.raises(JalError, match=message):
    experiment.run(tiny_config(name, **overrides), str(tmp_path))
  assert not (tmp_path / 'config.json').exists()


@pytest.mark.parametrize('name', ['bald', 'bald_last_layer'])
def test_mc_dropout_models_are_evaluated_by_their_predictive_distribution(name):
  from jal.strategies import base
  config = tiny_config(name, **{'strategy.mc_dropout.num_mc_samples': 4,
                                'strategy.mc_dropout.mc_batch_size': 8})
  strategy, dataset = build_strategy(config)
  trainer = strategy.trainer
  task = base.TaskModel(trainer, trainer.init(jax.random.key(0)).variables, 16)
  images = jax.device_put(dataset.test_images)
  indices = np.arange(20)
  got = strategy.predictive_log_probabilities(task, images, indices)
  deterministic = task.predict(images, indices, base.log_probabilities)
  chex.assert_shape(got, (20, dataset.num_classes))
  np.testing.assert_allclose(np.exp(got).sum(-1), 1.0, atol=1e-5)
  if name == 'bald':  # the average of T dropout passes, not the deterministic network
    assert not np.allclose(got, deterministic, atol=1e-4)
    np.testing.assert_array_equal(got, strategy.predictive_log_probabilities(task, images,
                                                                             indices))
  else:  # dropout before the classifier only: evaluated deterministically
    np.testing.assert_array_equal(got, deterministic)
