"""Fixtures of the tests of jal.initial_pools: the dataset and mesh, once per module, and scorers
memoised per key (each distinct self-supervised model trained once in a process)."""

from __future__ import annotations

import pytest

from conftest import load_dataset
from helpers import initial_pool_config as _config, memoized_scorer as _memoized
from jal import initial_pools, sharding


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  with pytest.MonkeyPatch.context() as patch:
    patch.setenv('JAL_CACHE_DIR', str(tmp_path_factory.mktemp('cache')))
    dataset = load_dataset(_config())
  return dataset, sharding.make_mesh()


@pytest.fixture
def trained_once(monkeypatch):
  monkeypatch.setattr(initial_pools, 'rotation_losses', _memoized('rotation'))
  monkeypatch.setattr(initial_pools, 'vae_losses', _memoized('vae'))
  monkeypatch.setattr(initial_pools, 'simclr_features', _memoized('simclr'))
