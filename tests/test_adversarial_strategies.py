"""Tests of VAAL, TA-VAAL and MAL as strategies: one round of each, the NaN
stop, TA-VAAL's ranker schedule, MAL's selection rule and Algorithm 3.

The equations (gradient reversal, VAE, discriminator and entropy losses) are
checked against NumPy in test_adversarial_parts.py; the ranking loss in
test_baselines.py.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from jal import experiment, selection as mal_selection
from jal.errors import JalError
from jal.models import CosineClassifier
from jal.objectives import Batch, adversarial
from jal.pool import Pool


def adversarial_config(name, **overrides):
  """`tiny_config` with 16x16 digits (the VAE needs 16 pixels) and tiny networks."""
  return tiny_config(name, **{
      'dataset.image_size': 16, 'train.epochs': 1, 'strategy.vaal.vae.width': 2,
      'strategy.vaal.vae.z_dim': 4, 'strategy.vaal.discriminator.width': 8,
      'strategy.vaal.loss_prediction_width': 4, 'strategy.mal.train.epochs': 1,
      'strategy.mal.train.batch_size': 16, 'strategy.mal.classifier_hidden': 8,
      'strategy.mal.discriminator_width': 8, **overrides})


# ------------------------------------------------------------- MAL's selection rule


def test_ranks_are_stable_and_in_both_directions():
  np.testing.assert_array_equal(mal_selection.ranks([0.3, 0.1, 0.3, 0.2], descending=False),
                                [2, 0, 3, 1])
  np.testing.assert_array_equal(mal_selection.ranks([0.3, 0.1, 0.3, 0.2], descending=True),
                                [0, 3, 1, 2])


def test_both_conditions_known_answer():
  # rank by D (low first):      0:0  1:1  3:2  4:3  2:4
  # rank by entropy (high first): 2:0  1:1  3:2  0:3  4:4
  # worse of the two ranks:      0:3  1:1  2:4  3:2  4:4
  d = np.array([0.1, 0.2, 0.9, 0.3, 0.8])
  h = np.array([0.5, 2.0, 3.0, 1.9, 0.1])
  candidates = np.array([10, 11, 12, 13, 14])
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 2), [11, 13])
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 3),
                                [11, 13, 10])
  # Candidates 12 and 14 tie on the worse rank (4); 12 has the smaller rank sum (4 < 7).
  np.testing.assert_array_equal(mal_selection.both_conditions(d, h, candidates, 5),
                                [11, 13, 10, 12, 14])


@pytest.mark.parametrize('seed', range(5))
def test_both_conditions_keeps_every_sample_in_both_top_b_lists(seed):
  rng = np.random.default_rng(seed)
  n, b = 200, 20
  d, h = rng.random(n), rng.random(n) + 0.5 * rng.random(n)
  query = set(mal_selection.both_conditions(d, h, np.arange(n), b).tolist())
  shared = set(np.argsort(d)[:b].tolist()) & set(np.argsort(-h)[:b].tolist())
  assert len(query) == b and shared <= query
  # Every selected sample is in the top m of both lists, for the smallest such m.
  worse = np.maximum(mal_selection.ranks(d, False), mal_selection.ranks(h, True))
  m = np.sort(worse)[b - 1]
  assert all(worse[i] <= m for i in query)


def test_both_conditions_rejects_nan_and_mismatched_scores():
  with pytest.raises(ValueError, match='NaN'):
    mal_selection.both_conditions(np.array([np.nan, 0.0]), np.zeros(2), np.arange(2), 1)
  with pytest.raises(ValueError, match='one entry per candidate'):
    mal_selection.both_conditions(np.zeros(3), np.zeros(2), np.arange(3), 1)


def test_cosine_classifier_with_the_appendix_hidden_layer_has_its_parameter_count():
  # MAL, App. B: C has 156.93K parameters with ResNet-18 (512 features) on CIFAR-100.
  variables = jax.eval_shape(CosineClassifier(100, hidden=256).init, jax.random.key(0),
                             np.zeros((1, 512), np.float32))
  count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(variables))
  assert count == 156_928


def test_pool_diagnostics_by_hand():
  out = adversarial.pool_diagnostics(np.array([2.0, -1.0]), np.array([-3.0, 0.0, 1e4]))
  sigmoid = lambda x: 1 / (1 + np.exp(-x))
  assert out['discriminator_mean_labeled'] == pytest.approx((sigmoid(2) + sigmoid(-1)) / 2)
  assert out['discriminator_mean_candidates'] == pytest.approx((sigmoid(-3) + 0.5 + 1) / 3)
  assert out['discriminator_accuracy'] == pytest.approx(3 / 5)  # 2.0, -3.0 and 0.0 are right


# ---------------------------------------------------------- runs of each method


@pytest.mark.parametrize('name', ['tavaal', 'mal'])
def test_one_round_of_each_adversarial_method(tmp_path, name):
  records = experiment.run(adversarial_config(name), str(tmp_path))
  assert [r['num_labeled'] for r in records] == [30, 50]
  assert [r['query_size'] for r in records] == [20, 0]
  prefix = 'mal_' if name == 'mal' else ''
  metrics = records[0]['train_metrics']
  for key in ('discriminator_loss', 'discriminator_accuracy', 'discriminator_mean_labeled',
              'discriminator_mean_unlabeled'):
    assert np.isfinite(metrics[prefix + key])
  assert 0 <= metrics[prefix + 'discriminator_accuracy'] <= 1
  if name == 'tavaal':
    assert metrics['loss'] == pytest.approx(metrics['task_loss'] + metrics['ranking_loss'],
                                            rel=1e-5)
    assert {'vae_reconstruction', 'vae_kl', 'vae_adversarial'} <= set(metrics)
  else:
    assert 0 <= metrics['mal_entropy'] <= np.log(10) + 1e-6
  query = records[0]['query_metrics']
  assert set(query) >= {'discriminator_mean_labeled', 'discriminator_mean_candidates',
                        'discriminator_accuracy'}
  assert records[1]['query_metrics'] == {}  # the last round does not query
  logged = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
  assert logged[0]['query_metrics'] == query


def test_vaal_round_and_a_nan_in_its_vae_stops_the_run_cleanly(tmp_path, monkeypatch):
  """VAAL's round 0 runs and queries; round 1's VAE loss turns NaN: the run
  stops with a one-line error and round 0 stays in the work directory."""
  config = adversarial_config('vaal')
  terms = adversarial.vae_loss_terms
  poison = {'on': False}

  def poisoned(*args):  # read when the step is traced: every run compiles its own
    out = terms(*args)
    return {**out, 'kl': out['kl'] * np.nan} if poison['on'] else out

  from jal.strategies import vaal
  monkeypatch.setattr(vaal.adversarial, 'vae_loss_terms', poisoned)
  (record,) = experiment.run(config, str(tmp_path), rounds=1)
  assert record['query_size'] == 20
  assert {'vae_reconstruction', 'vae_kl', 'discriminator_accuracy'} <= set(record['train_metrics'])
  assert 0 <= record['query_metrics']['discriminator_accuracy'] <= 1
  poison['on'] = True
  with pytest.raises(JalError, match='non-finite') as info:
    experiment.run(config, str(tmp_path))
  assert '\n' not in str(info.value) and 'vae_' in str(info.value)
  kept = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
  assert kept == [json.loads(json.dumps(record))]
  assert (tmp_path / 'checkpoints').exists()


# --------------------------------------------------------- TA-VAAL and MAL details


def test_tavaal_freezes_the_ranker_after_80_percent_of_the_epochs():
  config = adversarial_config('tavaal')
  strategy, dataset = build_strategy(config)
  assert strategy.task_spec().freeze_after == {'heads_loss_prediction': 0.8}
  trainer = strategy.trainer
  images = jax.device_put(dataset.train_images)
  labels = jax.device_put(dataset.train_labels)
  x = trainer.prepare(jax.random.key(0), images, np.arange(16))
  state = trainer.init(jax.random.key(1))
  update = jax.jit(trainer.update)

  def changed(progress):
    schedule = {'learning_rate': np.float32(0.1), 'progress': np.float32(progress)}
    new, _ = update(state, Batch(x, labels[:16], np.ones(16, np.float32)), schedule,
                    jax.random.key(2))
    differs = lambda a, b: not np.allclose(a, b)
    return {name: any(jax.tree.leaves(jax.tree.map(differs, jax.device_get(new.params[name]),
                                                   jax.device_get(state.params[name]))))
            for name in ('backbone', 'heads_loss_prediction')}

  assert changed(0.79) == {'backbone': True, 'heads_loss_prediction': True}
  # Frozen, while the ranking loss still reaches the backbone (Algorithm 1, line 10).
  assert changed(0.8) == {'backbone': True, 'heads_loss_prediction': False}


def test_mal_task_model_starts_from_the_trained_encoder():
  config = adversarial_config('mal', **{'train.epochs': 0})
  strategy, dataset = build_strategy(config)
  trainer = strategy.trainer
  images = jax.device_put(dataset.train_images)
  labels = np.full(dataset.num_train, -1, np.int32)
  labels[:40] = dataset.train_labels[:40]
  pool = Pool(dataset.num_train, np.arange(40), labels[:40])
  fresh = trainer.init(jax.random.key(0))
  fresh_head = jax.device_get(fresh.params['heads_classifier'])
  fitted = strategy.fit(fresh, images, jax.device_put(labels), pool, key=jax.random.key(1),
                        description='t')
  state, metrics = fitted.state, fitted.metrics
  encoder = fitted.aux['network']  # handed to the query explicitly
  chex_equal = lambda a, b: jax.tree.map(np.testing.assert_array_equal, jax.device_get(a),
                                         jax.device_get(b))
  chex_equal(state.params['backbone'], encoder['params']['backbone'])
  chex_equal(state.batch_stats['backbone'], encoder['batch_stats']['backbone'])
  chex_equal(state.params['heads_classifier'], fresh_head)  # C is not copied (Algorithm 3)
  assert metrics['mal_discriminator_loss'] > 0 and 'mal_entropy' in metrics


@pytest.mark.parametrize('overrides,message', [
    ({'strategy.mal.selection': 'product'}, "selection='product' is unknown"),
    ({'strategy.mal.temperature': 0.0}, 'temperature=0.0 must be positive'),
])
def test_bad_mal_hyperparameters_give_one_line_errors(tmp_path, overrides, message):
  with pytest.raises(JalError, match=message):
    experiment.run(adversarial_config('mal', **overrides), str(tmp_path))
  assert not (tmp_path / 'config.json').exists()


def test_tavaal_rejects_a_ranker_fraction_outside_0_1(tmp_path):
  with pytest.raises(JalError, match='ranker_epochs=1.5'):
    experiment.run(adversarial_config('tavaal', **{'strategy.vaal.ranker_epochs': 1.5}),
                   str(tmp_path))


@pytest.mark.parametrize('batch_statistics', [True, False])
def test_vaal_query_scores_with_the_batch_norm_mode_d_was_trained_in(batch_statistics):
  """True (VAAL's reference): each scoring batch is normalised by its own
  statistics, so a score depends on its batch; False: running averages."""
  config = adversarial_config('vaal', **{'strategy.vaal.query_batch_statistics': batch_statistics})
  strategy, dataset = build_strategy(config)
  trainer = strategy.trainer
  vae, discriminator = strategy._init_networks(jax.random.key(0))
  networks = {'vae': {'params': vae.params, 'batch_stats': vae.batch_stats},
              'discriminator': {'params': discriminator.params}}
  images = jax.device_put(dataset.train_images)
  task = trainer.init(jax.random.key(1)).variables
  a = strategy._logits(networks, task, images, np.arange(0, 8, dtype=np.int32))
  b = strategy._logits(networks, task, images, np.array([0, *range(100, 107)], np.int32))
  assert (not np.isclose(a[0], b[0])) == batch_statistics
