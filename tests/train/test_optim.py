"""Tests of jal.train.optim: the learning-rate schedules (constant, multistep, cosine) and the
optimisers (SGD with momentum and weight decay as PyTorch defines them, Adam with coupled weight
decay) against NumPy, the learning rate set through the optimiser's state under jit, and one-line
errors."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from jal.errors import JalError
from jal.train import optim


# ----------------------------------------------------------------------- learning_rate


def _cfg(**kwargs) -> ml_collections.ConfigDict:
  base = dict(optimizer='sgd', learning_rate=0.1, epochs=200)
  base.update(kwargs)
  return ml_collections.ConfigDict(base)


def test_learning_rate_constant():
  cfg = _cfg(lr_schedule='constant', learning_rate=0.05)
  assert [optim.learning_rate(cfg, e) for e in (0, 100, 199)] == [0.05] * 3
  # Constant is the default.
  cfg = _cfg(learning_rate=0.02)
  assert optim.learning_rate(cfg, 150) == pytest.approx(0.02)


def test_learning_rate_multistep():
  cfg = _cfg(lr_schedule='multistep', lr_milestones=(0.8,))
  assert optim.learning_rate(cfg, 0) == pytest.approx(0.1)
  assert optim.learning_rate(cfg, 159) == pytest.approx(0.1)
  assert optim.learning_rate(cfg, 160) == pytest.approx(0.01)
  assert optim.learning_rate(cfg, 199) == pytest.approx(0.01)


def test_learning_rate_multistep_two_milestones_and_decay():
  cfg = _cfg(lr_schedule='multistep', lr_milestones=(0.5, 0.75), lr_decay=0.2, epochs=40)
  got = [optim.learning_rate(cfg, e) for e in (19, 20, 29, 30, 39)]
  np.testing.assert_allclose(got, [0.1, 0.02, 0.02, 0.004, 0.004], rtol=1e-6)


def test_learning_rate_cosine():
  epochs = 200
  cfg = _cfg(lr_schedule='cosine', epochs=epochs)
  got = np.array([optim.learning_rate(cfg, e) for e in range(epochs + 1)])
  ref = 0.1 * 0.5 * (1 + np.cos(np.pi * np.arange(epochs + 1) / epochs))
  np.testing.assert_allclose(got, ref, atol=1e-6)
  assert got[0] == pytest.approx(0.1)
  assert got[epochs // 2] == pytest.approx(0.05, rel=1e-5)
  assert got[-1] == pytest.approx(0.0, abs=1e-7)
  assert got[epochs - 1] < 1e-5
  assert np.all(np.diff(got) <= 1e-9)


def test_learning_rate_unknown_schedule_raises():
  with pytest.raises(JalError, match='lr_schedule'):
    optim.learning_rate(_cfg(lr_schedule='exponential'), 0)


# ---------------------------------------------------------------------- make_optimizer


def _run_steps(tx, params, grads_per_step, lrs):
  """Applies ``tx`` for each gradient under jit, setting the learning rate each step."""

  @jax.jit
  def step(params, opt_state, grads, lr):
    opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, 'learning_rate': lr})
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = tx.init(params)
  history = []
  for grads, lr in zip(grads_per_step, lrs):
    params, opt_state = step(params, opt_state, grads, jnp.float32(lr))
    history.append(params)
  return history, opt_state


def test_sgd_momentum_weight_decay_matches_pytorch_semantics():
  lr, momentum, wd = 0.1, 0.9, 0.05
  cfg = _cfg(optimizer='sgd', learning_rate=lr, momentum=momentum, weight_decay=wd)
  tx = optim.make_optimizer(cfg)
  w0 = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  grads = [np.array([0.3, -0.1, 0.2, 0.0], np.float32), np.array([-0.5, 0.4, 0.1, 1.0], np.float32)]
  history, opt_state = _run_steps(tx, {'w': jnp.asarray(w0)}, [{'w': jnp.asarray(g)} for g in grads],
                                  [lr, lr])

  # PyTorch SGD: g += wd * w; buf = momentum * buf + g (buf = g at step 1); w -= lr * buf.
  w = w0.astype(np.float64)
  buf = np.zeros_like(w)
  expected = []
  for g in grads:
    d = g + wd * w
    buf = momentum * buf + d
    w = w - lr * buf
    expected.append(w.copy())
  for got, ref in zip(history, expected):
    chex.assert_trees_all_close(got['w'], ref.astype(np.float32), atol=1e-6)
  # The state exposes the learning rate.
  chex.assert_trees_all_close(opt_state.hyperparams['learning_rate'], jnp.float32(lr))


def test_sgd_learning_rate_changed_through_hyperparams():
  momentum, wd = 0.9, 0.01
  cfg = _cfg(optimizer='sgd', learning_rate=0.1, momentum=momentum, weight_decay=wd)
  tx = optim.make_optimizer(cfg)
  assert float(tx.init({'w': jnp.zeros(2)}).hyperparams['learning_rate']) == pytest.approx(0.1)
  w0 = np.array([1.0, -1.0], np.float32)
  grads = [np.array([0.5, 0.25], np.float32), np.array([0.5, 0.25], np.float32)]
  lrs = [0.1, 0.001]
  history, opt_state = _run_steps(tx, {'w': jnp.asarray(w0)}, [{'w': jnp.asarray(g)} for g in grads],
                                  lrs)
  w = w0.astype(np.float64)
  buf = np.zeros_like(w)
  for g, lr in zip(grads, lrs):
    buf = momentum * buf + g + wd * w
    w = w - lr * buf
  chex.assert_trees_all_close(history[-1]['w'], w.astype(np.float32), atol=1e-6)
  chex.assert_trees_all_close(opt_state.hyperparams['learning_rate'], jnp.float32(0.001))


def test_sgd_without_momentum():
  cfg = _cfg(optimizer='sgd', learning_rate=0.5)
  tx = optim.make_optimizer(cfg)
  w0 = np.array([1.0, 2.0], np.float32)
  g = np.array([0.2, -0.4], np.float32)
  history, _ = _run_steps(tx, {'w': jnp.asarray(w0)}, [{'w': jnp.asarray(g)}] * 2, [0.5, 0.5])
  chex.assert_trees_all_close(history[-1]['w'], w0 - 2 * 0.5 * g, atol=1e-6)


def test_adam_with_coupled_weight_decay():
  lr, wd, b1, b2, eps = 0.01, 0.1, 0.9, 0.999, 1e-8
  tx = optim.make_optimizer(_cfg(optimizer='adam', learning_rate=lr, weight_decay=wd))
  w0 = np.array([1.0, -2.0, 0.3], np.float32)
  grads = [np.array([0.1, 0.25, -0.3], np.float32), np.array([-0.2, 0.05, 0.4], np.float32)]
  history, _ = _run_steps(tx, {'w': jnp.asarray(w0)}, [{'w': jnp.asarray(g)} for g in grads],
                          [lr, lr])
  w = w0.astype(np.float64)
  m = np.zeros_like(w)
  v = np.zeros_like(w)
  for t, g in enumerate(grads, start=1):
    d = g + wd * w
    m = b1 * m + (1 - b1) * d
    v = b2 * v + (1 - b2) * d ** 2
    w = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
  chex.assert_trees_all_close(history[-1]['w'], w.astype(np.float32), atol=1e-6)


def test_make_optimizer_errors():
  with pytest.raises(JalError, match='optimizer'):
    optim.make_optimizer(_cfg(optimizer='rmsprop'))
  with pytest.raises(JalError, match='learning_rate'):
    optim.make_optimizer(_cfg(learning_rate=0.0))
  with pytest.raises(JalError, match='learning_rate'):
    optim.make_optimizer(_cfg(learning_rate=-0.1))
