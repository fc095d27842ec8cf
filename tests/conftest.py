"""Shared fixtures and helpers: one XLA compilation cache for the session, a tiny experiment config
on the embedded digits dataset (and its variant for the adversarial strategies), and the dataset,
strategy and oracle as the loop builds them."""

from __future__ import annotations

import os

import pytest

from configs import common

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
  """One persistent XLA compilation cache for the session and its subprocesses.

  Every experiment.run builds new Trainers, so identical programs would be
  compiled again and again; the cache is keyed by the program, not the Python
  function, and cuts the suite's compile time.
  """
  import tempfile
  import jax
  if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='jal-test-xla-cache-')
    config._jal_made_cache = os.environ['JAX_COMPILATION_CACHE_DIR']
  cache = os.environ['JAX_COMPILATION_CACHE_DIR']
  if os.environ.get('PYTEST_XDIST_WORKER') and 'multi_thread_eigen' not in os.environ.get(
      'XLA_FLAGS', ''):
    # Several workers share the cores: one compute thread each, not a pool
    # per worker fighting over them.
    os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                               ' --xla_cpu_multi_thread_eigen=false').strip()
  os.environ['XLA_FLAGS'] = xla_flags()
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
  jax.config.update('jax_compilation_cache_dir', cache)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)


# The tests' networks are tiny, so XLA's compile time dominates the suite; the
# LLVM backend at -O0 compiles them about 1.6x faster (the same numbers up to
# float rounding; every assertion holds either way). Production runs keep
# XLA's defaults.
TEST_XLA_FLAGS = '--xla_backend_optimization_level=0'


def xla_flags(*extra: str) -> str:
  """``XLA_FLAGS`` for the tests and their subprocesses: the environment's, the
  tests' own (`TEST_XLA_FLAGS`) and ``extra``."""
  flags = os.environ.get('XLA_FLAGS', '').split()
  for flag in (*TEST_XLA_FLAGS.split(), *extra):
    if flag not in flags:
      flags.append(flag)
  return ' '.join(flags)


def pytest_unconfigure(config):
  import shutil
  made = getattr(config, '_jal_made_cache', None)
  if made:
    shutil.rmtree(made, ignore_errors=True)


def tiny_config(strategy: str = 'pal', **overrides):
  """PAL on 300 digits, 2 rounds, width-4 CNNs: a full round in about a second."""
  config = common.base()
  config.dataset.name = 'digits'
  config.dataset.max_train = 300
  config.dataset.max_test = 100
  config.initial_pool.size = 30
  config.budget = 20
  config.num_rounds = 2
  config.model.width = 4
  config.train = common.train(learning_rate=0.05, epochs=2, batch_size=16, crop_pad=1)
  config.eval_batch_size = 64
  pal = config.strategy.pal
  pal.num_subqueries = 2
  pal.scoring_model.name = 'small_cnn'
  pal.scoring_model.width = 4
  pal.scoring_train = common.train(learning_rate=0.05, epochs=2, batch_size=16, crop_pad=1)
  pal.finetune = common.train(learning_rate=0.01, epochs=1, batch_size=16, crop_pad=1)
  config.strategy.name = strategy
  for key, value in overrides.items():
    node = config
    *path, last = key.split('.')
    for part in path:
      node = node[part]
    node[last] = value
  return config


@pytest.fixture(autouse=True)
def _quiet(monkeypatch, tmp_path_factory):
  """No progress bars, and a fresh jal cache per test, outside its tmp_path
  (which tests use as a work directory: jal refuses a non-empty one)."""
  monkeypatch.setenv('TQDM_DISABLE', '1')
  monkeypatch.setenv('JAL_CACHE_DIR', str(tmp_path_factory.mktemp('cache')))


@pytest.fixture(autouse=True)
def _fresh_trained_networks(monkeypatch):
  """Each test starts with no self-supervised network remembered in the process
  (`jal.initial_pools._TRAINED`), so what a test patches or counts does not
  depend on the tests that ran before it in the same worker."""
  import collections
  from jal import initial_pools
  monkeypatch.setattr(initial_pools, '_TRAINED', collections.OrderedDict())


def settle_after_kill() -> None:
  """Lets orbax's background threads finish after an in-process kill.

  A real kill stops every thread at once. A ``Killed`` raised in-process stops only the thread
  it is raised in, and orbax may still be cleaning up a failed save on its own threads; the
  test's next "process" must not race with them (seen in CI: a stale cleanup removed the next
  save's temporary directory).
  """
  import threading
  from orbax.checkpoint._src.futures import future
  for thread in threading.enumerate():
    if isinstance(thread, future._SignalingThread):  # pylint: disable=protected-access
      thread.join(timeout=60)


def strip_timings(records):
  return [{k: v for k, v in r.items() if not k.endswith('_seconds')} for r in records]


def load_dataset(config):
  """The config's dataset (`jal.experiment.load_data` without the evaluation sets)."""
  from jal import experiment
  return experiment.load_data(config)[0]


def build_strategy(config, dataset=None, mesh=None):
  """The strategy of ``config`` as the loop builds it, and the dataset it sees."""
  from jal import sharding, strategies
  from jal.task import make_task
  dataset = load_dataset(config) if dataset is None else dataset
  strategy = strategies.build(config, dataset.pool_data(),
                              make_task(dataset.class_names, dataset.train_labels, config),
                              mesh or sharding.make_mesh())
  return strategy, dataset


def simulated_oracle(config, dataset):
  """The experiment's oracle for ``dataset``."""
  from jal import oracle
  return oracle.make_oracle(config, dataset.train_labels, dataset.num_classes)


def adversarial_config(name, **overrides):
  """`tiny_config` with 16x16 digits (the VAE needs 16 pixels) and tiny networks."""
  return tiny_config(name, **{
      'dataset.image_size': 16, 'train.epochs': 1, 'strategy.vaal.vae.width': 2,
      'strategy.vaal.vae.z_dim': 4, 'strategy.vaal.discriminator.width': 8,
      'strategy.vaal.loss_prediction_width': 4, 'strategy.mal.train.epochs': 1,
      'strategy.mal.train.batch_size': 16, 'strategy.mal.classifier_hidden': 8,
      'strategy.mal.discriminator_width': 8, **overrides})


def run_config(**overrides):
  """A random-strategy run of 3 rounds on 120 digits, 1 epoch: about a second a round."""
  return tiny_config('random', **{'num_rounds': 3, 'train.epochs': 1, 'dataset.max_train': 120,
                                  'dataset.max_test': 40, 'initial_pool.size': 20,
                                  'budget': 10, **overrides})


@pytest.fixture(scope='session')
def finished_run(tmp_path_factory):
  """A finished run of `run_config` (real checkpoints, records, plot and TensorBoard files,
  written by jal, orbax and clu), once per test process; tests copy it (`copy_run`)."""
  from jal import experiment
  path = tmp_path_factory.mktemp('finished') / 'run'
  saved = {k: os.environ.get(k) for k in ('TQDM_DISABLE', 'JAL_CACHE_DIR')}
  os.environ.update(TQDM_DISABLE='1', JAL_CACHE_DIR=str(tmp_path_factory.mktemp('cache')))
  try:
    experiment.run(run_config(), str(path))
  finally:
    for key, value in saved.items():
      if value is None:
        os.environ.pop(key, None)
      else:
        os.environ[key] = value
  return path


def copy_run(finished, destination):
  """A copy of the finished run at ``destination`` (a path that does not exist yet)."""
  import shutil
  shutil.copytree(finished, destination)
  return destination


def snapshot(path) -> dict:
  """Every file under ``path`` with its bytes, and every directory (as None): what
  "byte-identical afterwards" compares. Empty for a path that does not exist."""
  out = {}
  for root, dirs, files in os.walk(path):
    for name in dirs:
      out[os.path.relpath(os.path.join(root, name), path)] = None
    for name in files:
      full = os.path.join(root, name)
      with open(full, 'rb') as f:
        out[os.path.relpath(full, path)] = f.read()
  return out
