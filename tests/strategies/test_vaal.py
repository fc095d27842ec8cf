"""Tests of jal.strategies.vaal, VAAL and TA-VAAL (Kim et al. 2021) as strategies: a VAAL round,
and a NaN in its VAE stopping the run cleanly; TA-VAAL's ranker frozen after 80% of the epochs
while the ranking loss still reaches the backbone, and its ranker fraction checked; the query
scored in the batch-norm mode the discriminator was trained in."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from conftest import adversarial_config, build_strategy
from jal import experiment
from jal.errors import JalError
from jal.objectives import Batch, adversarial


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
  vae, discriminator = strategy.init_networks(jax.random.key(0))
  networks = {'vae': {'params': vae.params, 'batch_stats': vae.batch_stats},
              'discriminator': {'params': discriminator.params}}
  images = jax.device_put(dataset.train_images)
  task = trainer.init(jax.random.key(1)).variables
  a = strategy._logits(networks, task, images, np.arange(0, 8, dtype=np.int32))
  b = strategy._logits(networks, task, images, np.array([0, *range(100, 107)], np.int32))
  assert (not np.isclose(a[0], b[0])) == batch_statistics


def test_tavaal_conditions_on_uniform_noise_in_the_first_epoch_and_on_the_ranker_after():
  """Algorithm 1, lines 5-6 (Kim et al. 2021): in the first epoch (progress 0) the VAE and
  D are conditioned on r ~ U(0, 1), whatever the ranker R; afterwards on sigmoid(R(x))."""
  config = adversarial_config('tavaal')
  strategy, dataset = build_strategy(config)
  task = strategy.trainer.init(jax.random.key(1)).variables
  other = {**task, 'params': {**task['params'], 'heads_loss_prediction': jax.tree.map(
      lambda p: p + 1.0, task['params']['heads_loss_prediction'])}}  # another R
  x = strategy.trainer.prepare(jax.random.key(0), jax.device_put(dataset.train_images),
                               np.arange(8))
  condition = jax.jit(strategy.condition)
  r = {(name, progress): np.asarray(condition(variables, x, np.float32(progress),
                                              jax.random.key(2)))
       for name, variables in (('task', task), ('other', other)) for progress in (0.0, 0.5)}
  np.testing.assert_array_equal(r['task', 0.0], r['other', 0.0])
  assert ((r['task', 0.0] >= 0) & (r['task', 0.0] < 1)).all() and r['task', 0.0].shape == (8, 1)
  np.testing.assert_allclose(r['task', 0.5], np.asarray(strategy.rank(task, x)), rtol=1e-6)
  assert not np.allclose(r['task', 0.5], r['other', 0.5])
