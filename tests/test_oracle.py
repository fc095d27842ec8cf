"""Tests of jal.oracle.noisy_labels, the symmetric label noise of PAL (Sec. 4.2 of Bhatnagar et al.
2021): exactly round(noise_rate * n) labels change, each to a class drawn uniformly from the K-1
wrong ones, at positions drawn uniformly; deterministic given the generator, the input untouched,
and a rate outside [0, 1] refused."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from jal import oracle, rng
from jal.errors import JalError
from jal.oracle import noisy_labels

_SETTINGS = settings(max_examples=50, deadline=None)


def true_labels(n: int, k: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, k, size=n).astype(np.int32)


@pytest.mark.parametrize('rate', [0.0, 0.2, 1.0])
@pytest.mark.parametrize('n, k', [(1000, 10), (7, 10), (501, 2), (0, 3)])
def test_flips_exactly_the_stated_number_never_to_the_true_class(rate, n, k):
  labels = true_labels(n, k)
  before = labels.copy()
  noisy = noisy_labels(labels, rate, k, np.random.default_rng(1))
  np.testing.assert_array_equal(labels, before)  # the input is not modified
  assert noisy.dtype == np.int32 and noisy.shape == (n,)
  assert noisy.min(initial=0) >= 0 and noisy.max(initial=0) < k
  changed = noisy != labels
  # Exactly round(rate * n) changed: with the flipped set of that size, this
  # also means no flipped label landed on its true class.
  assert changed.sum() == round(rate * n)


def test_rate_one_changes_every_label():
  labels = true_labels(300, 4)
  noisy = noisy_labels(labels, 1.0, 4, np.random.default_rng(0))
  assert np.all(noisy != labels)
  # With two classes, the only wrong class is the other one.
  labels2 = true_labels(50, 2)
  np.testing.assert_array_equal(noisy_labels(labels2, 1.0, 2, np.random.default_rng(0)),
                                1 - labels2)


def test_wrong_class_is_uniform_over_the_other_classes():
  k = 5
  labels = np.zeros(20000, np.int32)
  noisy = noisy_labels(labels, 1.0, k, np.random.default_rng(0))
  freq = np.bincount(noisy, minlength=k) / labels.size
  assert freq[0] == 0
  np.testing.assert_allclose(freq[1:], 1 / (k - 1), atol=0.02)


def test_which_labels_flip_is_uniform():
  labels = np.zeros(10, np.int32)
  hits = np.zeros(10)
  rng = np.random.default_rng(0)
  for _ in range(2000):
    hits += noisy_labels(labels, 0.2, 3, rng) != labels
  np.testing.assert_allclose(hits / 2000, 0.2, atol=0.04)


def test_deterministic_given_the_generator():
  labels = true_labels(1000, 10)
  a = noisy_labels(labels, 0.2, 10, np.random.default_rng(3))
  b = noisy_labels(labels, 0.2, 10, np.random.default_rng(3))
  c = noisy_labels(labels, 0.2, 10, np.random.default_rng(4))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@pytest.mark.parametrize('rate', [-0.1, 1.5, float('nan')])
def test_rate_out_of_range(rate):
  with pytest.raises(JalError, match='config.oracle.noise_rate'):
    noisy_labels(true_labels(10, 3), rate, 3, np.random.default_rng(0))


# ------------------------------------------------------ property-based, seeded by jal.rng


@_SETTINGS
@given(n=st.integers(0, 300), num_classes=st.integers(2, 12),
       rate=st.floats(0.0, 1.0), seed=st.integers(0, 2**31 - 1))
def test_noisy_labels_flips_exactly_round_rate_n(n, num_classes, rate, seed):
  truth = np.random.default_rng(seed).integers(0, num_classes, size=n)
  got = oracle.noisy_labels(truth, rate, num_classes, rng.numpy_rng(seed, 'oracle', 0))
  assert got.dtype == np.int32 and got.shape == (n,)
  assert np.all((got >= 0) & (got < num_classes))
  assert int((got != truth).sum()) == int(round(rate * n))
  again = oracle.noisy_labels(truth, rate, num_classes, rng.numpy_rng(seed, 'oracle', 0))
  np.testing.assert_array_equal(got, again)


def test_noisy_labels_rate_zero_is_truth():
  truth = np.array([3, 1, 4, 1, 5, 9, 2, 6])
  got = oracle.noisy_labels(truth, 0.0, 10, np.random.default_rng(0))
  np.testing.assert_array_equal(got, truth)
  assert got.dtype == np.int32
  # The input is not modified in place by a noisy call either.
  copy = truth.copy()
  oracle.noisy_labels(truth, 1.0, 10, np.random.default_rng(0))
  np.testing.assert_array_equal(truth, copy)


def test_noisy_labels_rate_one_flips_every_label():
  truth = np.arange(50) % 3
  got = oracle.noisy_labels(truth, 1.0, 3, np.random.default_rng(1))
  assert np.all(got != truth)


def test_noisy_labels_wrong_classes_are_uniform():
  num_classes, n = 5, 4000
  truth = np.full(n, 2)
  got = oracle.noisy_labels(truth, 1.0, num_classes, np.random.default_rng(2))
  counts = np.bincount(got, minlength=num_classes)
  assert counts[2] == 0
  wrong = counts[[0, 1, 3, 4]]
  # Each of the K-1 = 4 wrong classes: 1000 expected, sd ~27.
  assert np.all(np.abs(wrong - n / 4) < 150), counts


def test_noisy_labels_which_labels_flip_is_random():
  truth = np.zeros(20, np.int64)
  flipped = np.zeros(20, int)
  for seed in range(200):
    flipped += oracle.noisy_labels(truth, 0.25, 4, np.random.default_rng(seed)) != 0
  # 5 of 20 per draw: each position flips 50 times out of 200 in expectation.
  assert flipped.sum() == 5 * 200
  assert flipped.min() >= 25 and flipped.max() <= 80


@pytest.mark.parametrize('rate', [-0.1, 1.01, math.inf, -math.inf, math.nan])
def test_noisy_labels_rate_out_of_range_raises(rate):
  with pytest.raises(JalError, match='noise_rate'):
    oracle.noisy_labels(np.zeros(10, np.int64), rate, 10, np.random.default_rng(0))


# ------------------------------------------------------------------ SimulatedOracle


def test_the_simulated_oracle_answers_from_the_round_s_stream_and_keeps_the_truth():
  import ml_collections
  truth = np.arange(100, dtype=np.int32) % 10
  config = ml_collections.ConfigDict({'seed': 3, 'oracle': {'name': 'simulated',
                                                            'noise_rate': 0.3}})
  simulated = oracle.make_oracle(config, truth, 10)
  query = np.array([5, 17, 42, 99, 0, 63, 8, 21, 30, 77])
  for round_ in (0, 4):
    expected = noisy_labels(truth[query], 0.3, 10, rng.numpy_rng(3, 'oracle', round_))
    np.testing.assert_array_equal(simulated.label(query, round_), expected)
  assert not np.array_equal(simulated.label(query, 0), simulated.label(query, 4))
  np.testing.assert_array_equal(simulated.true_labels(query), truth[query])


def test_a_bad_oracle_setting_is_refused_when_the_oracle_is_made():
  import ml_collections
  config = lambda **oracle_: ml_collections.ConfigDict({
      'seed': 0, 'dataset': {'name': 'digits'},
      'oracle': {'name': 'simulated', 'noise_rate': 0.0, 'skip_label': 'skip', **oracle_}})
  with pytest.raises(JalError, match="config.oracle.name='crowd' is unknown"):
    oracle.make_oracle(config(name='crowd'), np.zeros(3, np.int32), 2)
  with pytest.raises(JalError, match="'human' labels a labeling project"):
    oracle.make_oracle(config(name='human'), np.zeros(3, np.int32), 2)
  with pytest.raises(JalError, match='a simulated oracle cannot answer'):
    oracle.make_oracle(config(), np.array([0, -1, 1], np.int32), 2)
  with pytest.raises(JalError, match='noise_rate=1.5 must be in'):
    oracle.make_oracle(config(noise_rate=1.5), np.zeros(3, np.int32), 2)
  with pytest.raises(JalError, match='needs at least 2 classes'):
    oracle.make_oracle(config(noise_rate=0.5), np.zeros(3, np.int32), 1)


def test_the_human_oracle_knows_only_the_answers_given():
  person = oracle.HumanOracle(np.array([-1, 1, -1, -1], np.int32), 'skip')
  assert person.asks_a_person
  np.testing.assert_array_equal(person.true_labels(np.arange(4)), [-1, 1, -1, -1])
  person.learn(np.array([2, 0]), np.array([0, 1]))
  np.testing.assert_array_equal(person.true_labels(np.arange(4)), [1, 1, 0, -1])
  with pytest.raises(JalError, match='run again with --labels FILE'):
    person.label(np.array([3]), 1)
