"""End-to-end tests of jal.experiment, the active-learning loop, on the embedded digits: the
rounds, their records and compilations, no implicit transfer, resume after a crash, warm starts,
bad configs and data, a diverging loss, the candidate subset; and one round of each strategy with
several (the baselines, the adversarial methods, the feature-based methods with every evaluation
metric), with one-line errors for their bad settings."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest

from jal import checkpoint, experiment, train
from jal.errors import JalError
from conftest import (adversarial_config, load_dataset, simulated_oracle, strip_timings,
                      tiny_config)
from helpers import BASELINES as _BASELINES


@pytest.fixture
def trainers(monkeypatch):
  """Records every Trainer the run builds, to count compilations."""
  built = []
  original = train.Trainer.__init__

  def init(self, *args, **kwargs):
    original(self, *args, **kwargs)
    built.append(self)

  monkeypatch.setattr(train.Trainer, '__init__', init)
  return built


def test_pal_three_rounds_compile_once(tmp_path, trainers):
  config = tiny_config('pal', num_rounds=3)
  records = experiment.run(config, str(tmp_path))
  assert [r['round'] for r in records] == [0, 1, 2]
  assert [r['num_labeled'] for r in records] == [30, 50, 70]
  assert [r['query_size'] for r in records] == [20, 20, 0]
  assert sum(records[0]['query_class_counts']) == 20
  assert sum(records[2]['labeled_class_counts']) == 70
  for r in records:
    assert 0.0 <= r['test_accuracy'] <= 1.0 and np.isfinite(r['test_nll'])
    assert r['strategy'] == 'pal' and r['seed'] == 0
  on_disk = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
  assert on_disk == records
  assert (tmp_path / 'accuracy.png').stat().st_size > 1000
  # Task model, PAL scoring network and g' each compiled their train step (or
  # epoch loop) and predict function once, although the pool grew every round;
  # the task model's predict once per image array it reads: the test split (the
  # evaluation) and the train split (the stopping signals' pass).
  assert len(trainers) == 3
  for trainer in trainers:
    counts = trainer.trace_counts
    assert counts['train_step'] + counts['train_epoch'] == 1, counts
    assert trainer.trace_counts['predict'] <= (2 if trainer is trainers[0] else 1), counts


@pytest.mark.parametrize('compiled_epochs', [False, True])
def test_a_pal_round_makes_no_implicit_transfer(tmp_path, compiled_epochs):
  """Host and device talk only through explicit device_put / device_get.

  The dataset, the pool's indices (once per fit), a learning rate per epoch
  and keys go up; metrics per epoch and scores per pass come down. Anything
  else (a Python scalar or NumPy array slipped into a jitted call inside an
  epoch) raises under the transfer guard. On CPU only host-to-device
  transfers are caught: there reading a device array is not a transfer.
  """
  import jax
  overrides = {f'{name}.compiled_epochs': compiled_epochs
               for name in ('train', 'strategy.pal.scoring_train', 'strategy.pal.finetune')}
  config = tiny_config('pal', **overrides)
  with jax.transfer_guard('disallow'):
    records = experiment.run(config, str(tmp_path))
  assert [r['query_size'] for r in records] == [20, 0]


def test_random_and_pal_share_the_initial_pool(tmp_path):
  pal = experiment.run(tiny_config('pal'), str(tmp_path / 'pal'))
  rand = experiment.run(tiny_config('random'), str(tmp_path / 'random'))
  assert pal[0]['labeled_class_counts'] == rand[0]['labeled_class_counts']
  first = [checkpoint.Checkpointer(str(tmp_path / d / 'checkpoints')).latest().pool.labeled[:30]
           for d in ('pal', 'random')]
  np.testing.assert_array_equal(first[0], first[1])


def test_entropy_runs_and_every_round_records_the_test_metrics(tmp_path):
  from jal import metrics
  records = experiment.run(tiny_config('entropy'), str(tmp_path))
  assert [r['num_labeled'] for r in records] == [30, 50]
  for r in records:
    per_class = r['test_per_class_accuracy']
    assert len(per_class) == 10 and all(a is None or 0 <= a <= 1 for a in per_class)
    assert 0 <= r['test_ece'] <= 1 and 0 <= r['test_brier'] <= 2 and r['test_nll'] > 0
    assert r['labeled_sampling_bias'] == pytest.approx(
        metrics.sampling_bias(np.asarray(r['labeled_class_counts'])))
    assert 0 <= r['labeled_sampling_bias'] <= 1


@pytest.mark.parametrize('strategy, from_scratch', [('pal', True), ('entropy', False)])
def test_resume_after_crash_equals_uninterrupted_run(tmp_path, monkeypatch, strategy,
                                                     from_scratch):
  config = tiny_config(strategy, num_rounds=3, retrain_from_scratch=from_scratch)
  expected = experiment.run(config, str(tmp_path / 'a'))

  saves = []
  original_save = checkpoint.Checkpointer.save

  def save_then_crash(self, state):
    original_save(self, state)
    saves.append(state.next_round)
    if len(saves) == 2:
      raise KeyboardInterrupt('simulated crash after round 1')

  monkeypatch.setattr(checkpoint.Checkpointer, 'save', save_then_crash)
  with pytest.raises(KeyboardInterrupt):
    experiment.run(config, str(tmp_path / 'b'))
  monkeypatch.setattr(checkpoint.Checkpointer, 'save', original_save)
  resumed = experiment.run(config, str(tmp_path / 'b'))
  assert strip_timings(resumed) == strip_timings(expected)
  a = checkpoint.Checkpointer(str(tmp_path / 'a' / 'checkpoints')).latest()
  b = checkpoint.Checkpointer(str(tmp_path / 'b' / 'checkpoints')).latest()
  np.testing.assert_array_equal(a.pool.labeled, b.pool.labeled)
  np.testing.assert_array_equal(a.pool.oracle_labels, b.pool.oracle_labels)
  assert (a.task_variables is None) == from_scratch
  # The stopping signals of the resumed rounds compare with the checkpointed predictions.
  assert a.stop_predictions.shape == (300,)  # the whole 300-image split: smaller than 2000
  np.testing.assert_array_equal(a.stop_predictions, b.stop_predictions)
  assert all(r['stop_set_agreement'] is not None for r in resumed[1:])


def test_every_round_records_the_stopping_signals_and_its_compile_time(finished_run):
  records = [json.loads(line) for line in open(finished_run / 'results.jsonl')]
  first, *later = records
  assert first['stop_set_agreement'] is None and first['stop_set_agreement_fraction'] is None
  for r in later:
    assert -1 <= r['stop_set_agreement'] <= 1 and 0 <= r['stop_set_agreement_fraction'] <= 1
  for r in records:
    assert 0 <= r['candidate_entropy_mean'] <= r['candidate_entropy_max'] <= 1
    assert r['stopping_seconds'] >= 0
  # Round 0 compiles the task model's steps; round 1 reuses them (no compile event at all).
  assert first['train_compile_seconds'] > 0
  assert later[0]['train_compile_seconds'] == 0.0
  assert first['train_compile_seconds'] <= first['train_seconds']
  # The plot has the signals' two panels under the accuracy: 5 x 7.4 inches at 120 dpi.
  with open(finished_run / 'accuracy.png', 'rb') as f:
    header = f.read(24)
  assert (int.from_bytes(header[16:20], 'big'), int.from_bytes(header[20:24], 'big')) == (600, 888)


def test_warm_start_differs_from_scratch(tmp_path):
  scratch = experiment.run(tiny_config('random'), str(tmp_path / 'a'))
  warm = experiment.run(tiny_config('random', retrain_from_scratch=False), str(tmp_path / 'b'))
  assert scratch[0]['test_nll'] == warm[0]['test_nll']  # round 0 starts from the same init
  assert scratch[1]['test_nll'] != warm[1]['test_nll']


def test_one_round_per_call_equals_one_call(tmp_path):
  config = tiny_config('random', num_rounds=3)
  expected = experiment.run(config, str(tmp_path / 'a'))
  assert len(experiment.run(config, str(tmp_path / 'b'), rounds=1)) == 1
  assert len(experiment.run(config, str(tmp_path / 'b'), rounds=1)) == 2
  assert strip_timings(experiment.run(config, str(tmp_path / 'b'))) == strip_timings(expected)


def test_finished_run_is_not_rerun(tmp_path, trainers):
  config = tiny_config('random')
  first = experiment.run(config, str(tmp_path))
  again = experiment.run(config, str(tmp_path))
  assert again == first
  assert all(t.trace_counts['train_step'] + t.trace_counts['train_epoch'] == 0
             for t in trainers[-1:])


def test_label_noise_reaches_the_pool(tmp_path):
  experiment.run(tiny_config('random', **{'oracle.noise_rate': 0.5}), str(tmp_path))
  state = checkpoint.Checkpointer(str(tmp_path / 'checkpoints')).latest()
  dataset = load_dataset(tiny_config())
  wrong = state.pool.oracle_labels != dataset.train_labels[state.pool.labeled]
  assert wrong.sum() == 15 + 10  # half of the initial pool and half of the query


def test_biased_initial_pool(tmp_path):
  records = experiment.run(tiny_config('random', **{'initial_pool.exclude_classes': (0, 1)}),
                           str(tmp_path))
  assert records[0]['labeled_class_counts'][:2] == [0, 0]


def test_workdir_of_another_config_is_refused(tmp_path):
  experiment.run(tiny_config('random'), str(tmp_path))
  before = (tmp_path / 'results.jsonl').read_text()
  with pytest.raises(JalError, match='different config.*strategy.name'):
    experiment.run(tiny_config('entropy'), str(tmp_path))
  assert (tmp_path / 'results.jsonl').read_text() == before
  records = experiment.run(tiny_config('entropy'), str(tmp_path), overwrite=True)
  assert records[0]['strategy'] == 'entropy'


@pytest.mark.parametrize('overrides, message', [
    ({'strategy.name': 'nope'}, "unknown strategy 'nope'"),
    ({'budget': 1000}, 'config.budget=1000 is larger than the 300 train examples'),
    ({'budget': 290}, 'larger than the 270 unlabeled examples'),
    ({'initial_pool.size': -5}, 'config.initial_pool.size=-5 must be positive'),
    ({'num_rounds': 0}, 'num_rounds=0 must be at least 1'),
    ({'initial_pool.exclude_classes': (12,)}, 'exclude_classes has \\[12\\]'),
    ({'dataset.name': 'imagenet'}, 'imagenet'),
    ({'train.optimizer': 'rmsprop'}, "optimizer='rmsprop' is unknown"),
    ({'strategy.pal.scoring_model.name': 'resnet50'}, 'resnet50'),
    ({'strategy.pal.finetune.batch_size': 0}, 'batch_size=0'),
    ({'evaluation.ece_bins': 0}, 'ece_bins=0 must be at least 1'),
    ({'stopping.stop_set_size': 0}, 'stop_set_size=0 must be a positive integer'),
])
def test_bad_config_gives_one_line_error(tmp_path, overrides, message):
  with pytest.raises(JalError, match=message) as info:
    experiment.run(tiny_config('pal', **overrides), str(tmp_path / 'run'))
  assert '\n' not in str(info.value)
  assert not (tmp_path / 'run').exists()  # a fixed config can then run in the same place


def test_corrupt_image_in_a_zip(tmp_path):
  from PIL import Image
  archive = tmp_path / 'images.zip'
  with zipfile.ZipFile(archive, 'w') as z:
    for split in ('train', 'test'):
      for label in ('a', 'b'):
        for i in range(3):
          path = tmp_path / f'{split}{label}{i}.png'
          Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(path)
          z.write(path, f'{split}/{label}/{i}.png')
    z.writestr('train/b/broken.png', b'not a png')
  config = tiny_config('random', **{'dataset.name': 'folder', 'dataset.path': str(archive)})
  with pytest.raises(JalError, match='broken.png') as info:
    experiment.run(config, str(tmp_path / 'run'))
  assert '\n' not in str(info.value)
  assert not (tmp_path / 'run').exists()


@pytest.mark.skipif(not os.path.exists(os.path.join(os.environ.get('JAL_DATA_DIR', '/nonexistent'),
                                                    'cifar10_jpeg.zip')),
                    reason='real-data smoke test: set JAL_DATA_DIR to ../shared/data')
def test_real_cifar10_smoke(tmp_path, monkeypatch):
  """PAL for two rounds on the real CIFAR-10 (JPEG copy), shrunk to CPU size."""
  monkeypatch.setenv('JAL_CACHE_DIR', os.path.expanduser('~/.cache/jal'))
  config = tiny_config('pal', **{
      'dataset.name': 'cifar10', 'dataset.max_train': 2000, 'dataset.max_test': 500,
      'initial_pool.size': 500, 'budget': 100, 'train.epochs': 4, 'train.batch_size': 64,
      'train.crop_pad': 4, 'model.width': 8, 'strategy.pal.scoring_train.batch_size': 64,
      'strategy.pal.finetune.batch_size': 64, 'eval_batch_size': 250})
  records = experiment.run(config, str(tmp_path))
  assert [r['num_labeled'] for r in records] == [500, 600]
  assert records[0]['dataset'] == 'cifar10'
  # Well above chance (10%) after a few epochs on 500 labels.
  assert records[-1]['test_accuracy'] > 0.2


def test_diverging_loss_stops_with_a_clear_error_and_keeps_finished_rounds(tmp_path,
                                                                            monkeypatch):
  config = tiny_config('random', num_rounds=3)
  from jal.strategies import base
  original = base.fit
  calls = []

  def fit_that_diverges_in_round_1(trainer, *args, **kwargs):
    calls.append(1)
    if len(calls) == 2:  # the second fit: round 1's task model
      trainer.train_config.learning_rate = 1e30
    return original(trainer, *args, **kwargs)

  monkeypatch.setattr(base, 'fit', fit_that_diverges_in_round_1)
  with pytest.raises(JalError, match='became non-finite') as info:
    experiment.run(config, str(tmp_path))
  assert '\n' not in str(info.value)
  kept = [json.loads(line) for line in open(tmp_path / 'results.jsonl')]
  assert [r['round'] for r in kept] == [0]


def test_bfloat16_run_matches_float32_closely(tmp_path):
  """Mixed precision (config.model.dtype and the scorer's) trains as well as float32."""
  overrides = {'model.dtype': 'bfloat16', 'strategy.pal.scoring_model.dtype': 'bfloat16',
               'train.epochs': 6}
  bf16 = experiment.run(tiny_config('pal', **overrides), str(tmp_path / 'bf16'))
  f32 = experiment.run(tiny_config('pal', **{**overrides, 'model.dtype': 'float32'}),
                       str(tmp_path / 'f32'))
  assert [r['query_size'] for r in bf16] == [20, 0]  # the bf16 scorer queried
  assert np.isfinite(bf16[0]['train_loss'])
  assert abs(bf16[0]['train_loss'] - f32[0]['train_loss']) < 0.1


def test_candidate_subset_is_random_per_round_and_holds_the_query(tmp_path):
  config = tiny_config('entropy', candidate_subset=50, num_rounds=3)
  dataset = load_dataset(config)
  pool = experiment.initial_state(config, dataset.pool_data(), simulated_oracle(config, dataset),
                                  30).pool
  first = experiment.candidates(config, pool, 0)
  assert first.size == 50 and np.unique(first).size == 50
  assert np.isin(first, pool.unlabeled).all()
  np.testing.assert_array_equal(first, experiment.candidates(config, pool, 0))
  assert not np.array_equal(first, experiment.candidates(config, pool, 1))
  config.candidate_subset = None
  np.testing.assert_array_equal(experiment.candidates(config, pool, 0), pool.unlabeled)
  config.candidate_subset = 10_000  # more than the unlabeled pool: all of it
  np.testing.assert_array_equal(experiment.candidates(config, pool, 0), pool.unlabeled)

  config.candidate_subset = 50
  experiment.run(config, str(tmp_path))
  labeled = checkpoint.Checkpointer(str(tmp_path / 'checkpoints')).latest().pool.labeled
  assert np.isin(labeled[30:50], first).all()


def test_candidate_subset_smaller_than_the_budget_is_refused(tmp_path):
  with pytest.raises(JalError, match='candidate_subset=10 is smaller than the budget of 20'):
    experiment.run(tiny_config('entropy', candidate_subset=10), str(tmp_path))
  assert os.listdir(tmp_path) == []  # nothing written


# ---------------------------------------------------------- one round of each strategy


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
  assert os.listdir(tmp_path) == []  # nothing written


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


@pytest.mark.parametrize('name', ['scal', 'featuresim', 'dfm'])
def test_one_round_with_every_evaluation_metric(tmp_path, name):
  config = tiny_config(name, **{'train.epochs': 1, 'evaluation.ood_classes': (9,),
                                'evaluation.blur_severity': 2,
                                'strategy.scal.classifier_train.epochs': 2,
                                'strategy.scal.projection_dim': 8, 'strategy.dfm.components': 2})
  records = experiment.run(config, str(tmp_path))
  assert [r['query_size'] for r in records] == [20, 0]
  for record in records:
    assert 0 <= record['test_accuracy'] <= 1 and len(record['test_per_class_accuracy']) == 9
    for key in ('test_ece', 'test_brier', 'test_nll', 'test_ood_auroc', 'blurred_accuracy',
                'blurred_ece', 'labeled_sampling_bias'):
      assert np.isfinite(record[key]), key
    assert sum(record['labeled_class_counts']) == record['num_labeled']
  metrics = records[0]['train_metrics']
  if name == 'scal':
    assert set(metrics) == {'loss', 'classifier_loss', 'classifier_accuracy'}
    assert records[0]['train_loss'] == metrics['loss'] > 0
  query = records[0]['query_metrics']
  assert set(query) == ({'candidate_reconstruction_error', 'query_reconstruction_error'}
                        if name == 'dfm' else
                        {'candidate_similarity', 'query_similarity', 'query_unseen_class'})


@pytest.mark.parametrize('overrides,message', [
    ({'evaluation.blur_severity': 6}, 'severity must be an int in 1..5'),
    ({'evaluation.ood_classes': (0, 0)}, 'must be distinct classes'),
    ({'evaluation.ood_classes': (1,), 'evaluation.ood_dataset': 'mnist'}, 'not both'),
    ({'strategy.name': 'scal', 'strategy.scal.temperature': 0.0}, 'must be positive'),
    ({'strategy.name': 'dfm', 'strategy.dfm.components': 0}, 'components=0'),
])
def test_bad_evaluation_and_strategy_settings_give_one_line_errors(tmp_path, overrides,
                                                                   message):
  with pytest.raises(JalError, match=message):
    experiment.run(tiny_config('random', **overrides), str(tmp_path))
  assert os.listdir(tmp_path) == []  # nothing written
