"""Tests of jal.stopping (Cohen's kappa, the normalised entropy, the stop set, a round's signals,
the settings) against NumPy references written from the definitions, and of
jal.train.compile_time (compile spans, their union, a call that compiles nothing)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from configs import common
from jal import stopping
from jal.errors import JalError
from jal.train import compile_time


def _kappa_reference(a, b, num_classes):
  """Cohen (1960) from the contingency table: kappa = (p_o - p_e) / (1 - p_e)."""
  table = np.zeros((num_classes, num_classes))
  for i, j in zip(a, b):
    table[i, j] += 1
  table /= table.sum()
  p_o = np.trace(table)
  p_e = np.sum(table.sum(axis=1) * table.sum(axis=0))
  return (p_o - p_e) / (1 - p_e)


def test_kappa_matches_the_contingency_table_and_sklearn():
  rng = np.random.default_rng(0)
  for _ in range(5):
    a = rng.integers(0, 4, 50)
    b = np.where(rng.random(50) < 0.7, a, rng.integers(0, 4, 50))
    kappa = stopping.cohens_kappa(a, b, 4)
    assert kappa == pytest.approx(_kappa_reference(a, b, 4), abs=1e-12)
    assert kappa == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)


def test_kappa_edge_cases():
  a = np.array([0, 1, 2, 1])
  assert stopping.cohens_kappa(a, a, 3) == 1.0
  # Chance-level: every pair of classes equally often.
  assert stopping.cohens_kappa([0, 0, 1, 1], [0, 1, 0, 1], 2) == pytest.approx(0.0)
  assert stopping.cohens_kappa([0, 1], [1, 0], 2) == pytest.approx(-1.0)
  # One class everywhere in both: p_e = 1, 0/0, taken as full agreement.
  assert stopping.cohens_kappa([2, 2, 2], [2, 2, 2], 3) == 1.0
  with pytest.raises(ValueError):
    stopping.cohens_kappa([0, 1], [0], 2)


def test_normalized_entropy():
  probs = np.array([[0.25] * 4, [1.0, 0, 0, 0], [0.5, 0.5, 0, 0], [0.7, 0.1, 0.1, 0.1]])
  with np.errstate(divide='ignore'):
    h = stopping.normalized_entropy(np.log(probs))
  reference = [-sum(p * np.log(p) for p in row if p > 0) / np.log(4) for row in probs]
  np.testing.assert_allclose(h, reference, atol=1e-12)
  assert h[0] == pytest.approx(1.0) and h[1] == 0.0 and h[2] == pytest.approx(0.5)


def test_the_stop_set_is_fixed_by_the_seed_and_capped_by_the_split():
  a = stopping.stop_set(3, 1000, 200)
  assert a.shape == (200,) and a.dtype == np.int64
  assert np.all(np.diff(a) > 0) and 0 <= a[0] and a[-1] < 1000
  np.testing.assert_array_equal(a, stopping.stop_set(3, 1000, 200))
  assert not np.array_equal(a, stopping.stop_set(4, 1000, 200))
  np.testing.assert_array_equal(stopping.stop_set(3, 150, 200), np.arange(150))


def test_signals_of_a_round_from_one_pass():
  log_p = np.log(np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5], [0.99, 0.01]]))
  calls = []

  def predict(indices):
    calls.append(np.asarray(indices))
    return log_p[indices]

  stop, candidates = np.array([0, 1, 2]), np.array([3, 4])
  fields, predictions = stopping.signals(predict, stop, candidates, None)
  assert len(calls) == 1  # the stop set and the candidates in one pass
  np.testing.assert_array_equal(predictions, [0, 1, 0])
  assert fields['stop_set_agreement'] is None and fields['stop_set_agreement_fraction'] is None
  h = stopping.normalized_entropy(log_p[[3, 4]])
  assert fields['candidate_entropy_mean'] == pytest.approx(h.mean())
  assert fields['candidate_entropy_max'] == pytest.approx(1.0)

  previous = np.array([0, 0, 0], np.int32)
  fields, _ = stopping.signals(predict, stop, np.zeros(0, np.int64), previous)
  assert fields['stop_set_agreement'] == pytest.approx(_kappa_reference([0, 0, 0], [0, 1, 0], 2))
  assert fields['stop_set_agreement_fraction'] == pytest.approx(2 / 3)
  assert fields['candidate_entropy_mean'] is None  # no candidates left
  with pytest.raises(JalError, match='stop-set examples'):
    stopping.signals(predict, stop, candidates, np.zeros(5, np.int32))


@pytest.mark.parametrize('key, value, message', [
    ('stop_set_size', 0, 'stop_set_size=0 must be a positive integer'),
    ('stop_set_size', -3, 'stop_set_size=-3 must be a positive integer'),
])
def test_bad_settings_are_one_line(key, value, message):
  config = common.base()
  config.stopping[key] = value
  with pytest.raises(JalError, match=message) as info:
    stopping.check_config(config)
  assert '\n' not in str(info.value)


def test_the_signals_are_for_classification_and_can_be_turned_off():
  config = common.base()
  stopping.check_config(config)
  assert stopping.enabled(config, 'classification')
  assert not stopping.enabled(config, 'segmentation')
  config.stopping.signals = False
  assert not stopping.enabled(config, 'classification')


def test_compile_time_of_a_fresh_function_and_of_a_call_that_compiles_nothing():
  f = jax.jit(lambda x: jnp.tanh(x) * 3.0 + jnp.float32(0.125))  # a new function: traced anew
  x = jnp.ones((3, 5))
  with compile_time.measure() as outer:
    with compile_time.measure() as first:
      f(x).block_until_ready()
  assert first.seconds > 0
  assert outer.seconds >= first.seconds  # nested measurements both see the compile
  with compile_time.measure() as second:
    f(x).block_until_ready()  # same function, same shapes: cached, no event
  assert second.seconds == 0.0


def test_nested_and_overlapping_spans_count_once():
  clock = compile_time.CompileTime()
  for start, end in [(0.0, 1.0), (0.2, 0.5), (0.8, 1.5), (3.0, 4.0)]:
    clock.add(start, end)
  assert clock.seconds == pytest.approx(2.5)
  assert compile_time.CompileTime().seconds == 0.0
