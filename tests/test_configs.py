"""Every config file loads, in every variant, and says how to run it."""

from __future__ import annotations

import glob
import importlib.util
import os

import pytest

from jal import experiment, strategies
from jal.errors import JalError
from conftest import REPO

CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, 'configs', '*.py'))
                 if os.path.basename(p) not in ('__init__.py', 'common.py'))


def load_module(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('path', CONFIGS, ids=os.path.basename)
def test_config_loads_in_every_variant_and_documents_its_command(path):
  module = load_module(path)
  assert f'configs/{os.path.basename(path)}' in module.__doc__
  assert 'python -m jal.main' in module.__doc__
  for arg in (None, 'runlocal'):
    config = module.get_config(arg)
    assert config.strategy.name in strategies.available()
    assert config.num_rounds >= (3 if arg else 1)
  with pytest.raises(JalError, match='unknown config variant'):
    module.get_config('no_such_variant')


def _offline_tfds_config(name, tmp_path, monkeypatch):
  """``configs/NAME:runlocal`` shrunk to 200 + 50 images, 40 initial, +20, 2 rounds,
  width 4, 1 epoch, with tfds offline and no local copy (for ``tfds.testing.mock_data``)."""
  tfds = pytest.importorskip('tensorflow_datasets')
  from jal.data import tfds_source
  monkeypatch.setattr(tfds_source, 'network_available', lambda *a, **k: False)
  monkeypatch.setenv('JAL_DATA_DIR', str(tmp_path / 'no_local_copy'))
  config = load_module(os.path.join(REPO, 'configs', name)).get_config('runlocal')
  config.dataset.max_train = 200
  config.dataset.max_test = 50
  config.initial_pool.size = 40
  config.budget = 20
  config.num_rounds = 2
  config.model.width = 4
  config.train.epochs = 1
  return tfds, config


def test_pal_protocol_matches_the_paper():
  config = load_module(os.path.join(REPO, 'configs', 'pal_cifar10.py')).get_config()
  assert (config.initial_pool.size, config.budget, config.num_rounds) == (0.1, 0.05, 5)
  assert config.model.name == 'vgg16' and config.strategy.pal.scoring_model.name == 'resnet18'
  assert (config.train.learning_rate, config.train.epochs, config.train.batch_size) == (
      0.01, 100, 64)
  assert config.strategy.pal.lambda1 == config.strategy.pal.lambda2 == 1.0
  noisy = load_module(os.path.join(REPO, 'configs', 'pal_svhn.py')).get_config('noisy,biased')
  assert noisy.oracle.noise_rate == 0.2 and tuple(noisy.initial_pool.exclude_classes) == (0, 1)


def test_pal_svhn_runs_through_tfds(tmp_path, monkeypatch):
  """configs/pal_svhn.py end to end on tfds mock data (the real tfds code path)."""
  tfds, config = _offline_tfds_config('pal_svhn.py', tmp_path, monkeypatch)
  config.strategy.pal.scoring_model.width = 2
  config.strategy.pal.scoring_train.epochs = 1
  config.strategy.pal.finetune.epochs = 1
  config.strategy.pal.num_subqueries = 2
  config.eval_batch_size = 50
  with tfds.testing.mock_data(num_examples=250):
    records = experiment.run(config, str(tmp_path / 'run'))
  assert [r['num_labeled'] for r in records] == [40, 60]
  assert records[0]['dataset'] == 'svhn_cropped' and records[0]['strategy'] == 'pal'


def test_adversarial_protocols_match_the_papers():
  get = lambda name, arg=None: load_module(os.path.join(REPO, 'configs', name)).get_config(arg)
  for name, hidden in (('tavaal_cifar10.py', 4), ('vaal_cifar10.py', 2)):
    config = get(name)
    assert (config.initial_pool.size, config.budget, config.num_rounds) == (1_000, 1_000, 10)
    assert config.candidate_subset == 10 * config.budget and config.model.name == 'resnet18'
    assert (config.train.optimizer, config.train.learning_rate, config.train.epochs,
            tuple(config.train.lr_milestones)) == ('sgd', 0.1, 200, (0.8,))
    for key in ('vae_train', 'discriminator_train'):
      assert (config.strategy.vaal[key].optimizer, config.strategy.vaal[key].learning_rate) == (
          'adam', 5e-4)
    assert config.strategy.vaal.discriminator.num_hidden == hidden
  assert get('tavaal_cifar10.py').strategy.vaal.ranker_epochs == 0.8
  mal = get('mal_cifar100.py')
  assert (mal.dataset.name, mal.initial_pool.size, mal.budget, mal.num_rounds) == (
      'cifar100', 0.02, 0.02, 5)
  assert mal.model.name == 'resnet18' and mal.strategy.name == 'mal'
  assert mal.strategy.mal.train.optimizer == mal.train.optimizer == 'adam'
  assert mal.strategy.mal.train.epochs == mal.train.epochs == 100


def test_mal_cifar100_runs_on_tfds_mock_data(tmp_path, monkeypatch):
  """configs/mal_cifar100.py end to end on tfds mock data (CIFAR-100 is not offline here)."""
  tfds, config = _offline_tfds_config('mal_cifar100.py', tmp_path, monkeypatch)
  config.train.batch_size = 16
  config.strategy.mal.train.epochs = 1
  config.strategy.mal.train.batch_size = 16
  config.strategy.mal.classifier_hidden = 8
  config.strategy.mal.discriminator_width = 8
  config.eval_batch_size = 50
  with tfds.testing.mock_data(num_examples=250):
    records = experiment.run(config, str(tmp_path / 'run'))
  assert [r['num_labeled'] for r in records] == [40, 60]
  assert records[0]['dataset'] == 'cifar100' and len(records[0]['labeled_class_counts']) == 100
  assert records[0]['query_metrics']['discriminator_accuracy'] >= 0


def test_scal_protocols_match_the_paper():
  get = lambda name, arg=None: load_module(os.path.join(REPO, 'configs', name)).get_config(arg)
  for name, dataset, budget in (('scal_cifar10.py', 'cifar10', 1_000),
                                ('scal_svhn.py', 'svhn_cropped', 1_000),
                                ('scal_fashion_mnist.py', 'fashion_mnist', 500),
                                ('scal_mnist.py', 'mnist', 500)):
    config = get(name)
    assert config.dataset.name == dataset and config.strategy.name == 'scal'
    assert (config.initial_pool.size, config.budget, config.num_rounds,
            config.candidate_subset) == (budget, budget, 10, 10_000)
    assert config.model.name == 'resnet18'
    assert (config.train.optimizer, config.train.learning_rate, config.train.momentum,
            config.train.weight_decay, config.train.epochs, tuple(config.train.lr_milestones),
            config.train.lr_decay) == ('sgd', 0.1, 0.9, 5e-4, 200, (0.8,), 0.1)
    assert config.strategy.scal.temperature == 0.07
    assert config.evaluation.ece_bins == 15
  cifar = get('scal_cifar10.py')
  assert cifar.evaluation.ood_dataset == 'svhn_cropped' and cifar.evaluation.blur_severity == 3
  assert get('scal_cifar10.py', 'runlocal').evaluation.ood_dataset == 'mnist'


def test_scenario_configs_set_their_scenario():
  get = lambda name, arg=None: load_module(os.path.join(REPO, 'configs', name)).get_config(arg)
  # Scenarios are variants after the colon, combinable, never files of their own.
  for dataset in ('svhn', 'cifar10'):
    noisy = get(f'pal_{dataset}.py', 'noisy,runlocal')
    assert noisy.oracle.noise_rate == 0.2 and noisy.dataset.max_train == 10_000
    biased = get(f'pal_{dataset}.py', 'biased')
    assert tuple(biased.initial_pool.exclude_classes) == (0, 1) and biased.strategy.name == 'pal'
    assert get(f'pal_{dataset}.py', 'biased,noisy,runlocal').oracle.noise_rate == 0.2
  assert get('tavaal_cifar10.py').dataset.imbalance.kind is None
  for arg, factor in (('x10', 10.0), ('x100', 100.0), ('runlocal,x100', 100.0)):
    imbalanced = get('tavaal_cifar10.py', arg)
    assert imbalanced.dataset.imbalance.kind == 'step'
    assert imbalanced.dataset.imbalance.factor == factor
    assert tuple(imbalanced.dataset.imbalance.classes) == (0, 1, 2, 3, 4)
  with pytest.raises(JalError, match='not both'):
    get('tavaal_cifar10.py', 'x10,x100')
  mal = get('mal_cifar100.py', 'imbalanced')
  assert mal.dataset.imbalance.kind == 'random_ratios' and mal.dataset.imbalance.classes_per_ratio == 20
  assert (mal.initial_pool.size, mal.budget) == (1_000, 1_000)
  assert get('mal_cifar100.py').dataset.imbalance.kind is None
  assert get('pal_mnist.py').dataset.name == 'mnist'
  dbal = get('pal_mnist.py', 'runlocal,dbal')  # Gal et al. 2017's network; PAL's unchanged
  assert (dbal.model.name, dbal.model.width, dbal.strategy.name) == ('dbal_cnn', None, 'bald')
  assert dbal.strategy.pal.scoring_model.name == 'resnet18'
  assert get('pal_mnist.py', 'runlocal').model.name == 'small_cnn'


def test_initial_pool_protocols_match_chandra_et_al_2021():
  for dataset in ('mnist', 'cifar10'):
    config = load_module(os.path.join(REPO, 'configs', f'initial_pools_{dataset}.py')).get_config()
    assert config.dataset.name == dataset and config.initial_pool.name == 'pretext_loss'
    assert (config.initial_pool.size, config.budget) == (0.05, 0.1)
    assert (config.train.optimizer, config.train.learning_rate, config.train.weight_decay) == (
        'adam', 5e-4, 5e-4)
    assert config.model.name == config.initial_pool.ssl_model.name == 'resnet18'


def test_segmentation_protocols_match_the_papers():
  get = lambda name, arg=None: load_module(os.path.join(REPO, 'configs', name)).get_config(arg)
  pal = get('pal_cityscapes.py')
  assert (pal.dataset.name, pal.initial_pool.size, pal.budget) == ('cityscapes', 0.05, 0.01)
  assert pal.model.name == pal.strategy.pal.scoring_model.name == 'mobilenet_v2'
  assert (pal.train.learning_rate, pal.train.epochs, pal.train.batch_size) == (0.01, 50, 8)
  assert (pal.strategy.pal.lambda1, pal.strategy.pal.lambda2) == (0.5, 0.0)
  assert tuple(get('pal_cityscapes.py', 'biased').initial_pool.exclude_classes) == (15, 16)
  mal = get('mal_bdd100k.py')
  assert (mal.dataset.name, mal.dataset.image_size, len(mal.dataset.classes)) == (
      'mask_folder', 224, 19)
  assert (mal.initial_pool.size, mal.budget, mal.num_rounds) == (0.05, 0.05, 4)
  assert mal.model.name == 'drn_d_22' and mal.strategy.mal.train.optimizer == 'adam'
  tavaal = get('tavaal_cityscapes.py')
  assert (tavaal.initial_pool.size, tavaal.budget, tavaal.model.name) == (200, 200, 'drn_d_22')
  assert (tavaal.train.learning_rate, tavaal.train.batch_size, tavaal.train.epochs) == (
      1e-3, 4, 100)
  assert tavaal.strategy.vaal.vae_train.learning_rate == 1e-4
  assert tavaal.strategy.vaal.discriminator.num_hidden == 4
  for name in ('pal_cityscapes.py', 'mal_bdd100k.py', 'tavaal_cityscapes.py', 'camvid.py'):
    local = get(name, 'runlocal')
    assert (local.dataset.name, local.model.name, local.segmentation.reduction) == (
        'camvid', 'small_fcn', 'mean')
