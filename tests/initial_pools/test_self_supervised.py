"""Tests of jal.initial_pools.self_supervised, the self-supervised scorers of Chandra et al.
(2021): the rotation (pretext) losses and the VAE's losses are deterministic, finite and compiled
once, and the VAE refuses images below 16x16. The scorers are trained once per key and reused (the
trained_once fixture)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from helpers import (SIZE, REAL_SCORERS as _REAL, initial_pool_config as _config,
                     recorded as _recorded, select_pool as _select)
from jal import initial_pools
from jal.errors import JalError


@pytest.mark.parametrize('kind', ['rotation', 'vae'])
def test_scorers_are_deterministic_finite_and_compiled_once(setup, trained_once, kind):
  dataset, mesh = setup
  name = 'pretext_loss' if kind == 'rotation' else 'vae_loss'
  _select(_config(name), dataset, mesh, SIZE)  # trains, if not yet
  (losses, features), key, kwargs = _recorded(kind)
  n = dataset.num_train
  assert losses.shape == (n,) and losses.dtype == np.float32
  assert features.shape == ((n, 16) if kind == 'rotation' else (n, 4))  # 4 * width; z_dim
  assert np.isfinite(losses).all() and np.isfinite(features).all() and (losses >= 0).all()
  traces = initial_pools.TRACE_COUNTS[kind]
  again = _REAL[kind](dataset.pool_data(), mesh, key=key, **kwargs)
  assert initial_pools.TRACE_COUNTS[kind] == traces  # the scoring pass is not compiled again
  np.testing.assert_array_equal(again[0], losses)
  np.testing.assert_array_equal(again[1], features)


def test_the_vae_refuses_images_below_16_pixels(setup):
  dataset, mesh = setup
  small = dataclasses.replace(dataset, train_images=dataset.train_images[:, :8, :8])
  config = _config('vae_loss')
  with pytest.raises(JalError, match=r'16x16.*config\.dataset\.image_size'):
    _select(config, small, mesh, SIZE)
