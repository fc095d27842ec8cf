"""Tests of jal.metrics against hand-computed values and explicit-loop NumPy references: accuracy
and per-class accuracy, expected calibration error, Brier score, negative log-likelihood, sampling
bias, out-of-distribution AUROC, the combined evaluation metrics, and one-line errors for bad
inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jal import metrics


def _log(probs) -> np.ndarray:
  with np.errstate(divide='ignore'):
    return np.log(np.asarray(probs, dtype=np.float64))


def _random_log_probs(rng, n, k, temperature=1.0):
  logits = rng.normal(size=(n, k)) * 3.0 / temperature
  logits -= logits.max(axis=1, keepdims=True)
  return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


# ---- independent references: explicit loops, no code shared with jal.metrics


def _ref_ece(probs, labels, num_bins):
  n = len(labels)
  total = 0.0
  for s in range(num_bins):
    lo, hi = s / num_bins, (s + 1) / num_bins
    members = []
    for i in range(n):
      conf = max(probs[i])
      if lo < conf <= hi or (s == 0 and conf == 0.0):
        members.append(i)
    if not members:
      continue
    acc = sum(int(np.argmax(probs[i]) == labels[i]) for i in members) / len(members)
    conf = sum(max(probs[i]) for i in members) / len(members)
    total += len(members) / n * abs(acc - conf)
  return total


def _ref_brier(probs, labels):
  total = 0.0
  for i, row in enumerate(probs):
    for k, p in enumerate(row):
      total += (p - (1.0 if k == labels[i] else 0.0)) ** 2
  return total / len(labels)


def _ref_nll(probs, labels):
  return -sum(math.log(probs[i][labels[i]]) for i in range(len(labels))) / len(labels)


def _ref_accuracy(probs, labels):
  return sum(int(np.argmax(row) == y) for row, y in zip(probs, labels)) / len(labels)


# ------------------------------------------------------------------ accuracy


def test_accuracy_and_per_class_by_hand():
  # argmax: 0, 1, 1, 2; labels 0, 1, 0, 2 -> correct, correct, wrong, correct.
  probs = [[.6, .3, .1], [.2, .7, .1], [.3, .5, .2], [.1, .1, .8]]
  labels = np.array([0, 1, 0, 2])
  assert metrics.accuracy(_log(probs), labels) == pytest.approx(0.75)
  # class 0: 1 of 2; class 1: 1 of 1; class 2: 1 of 1; class 3 absent -> None.
  probs4 = [row + [0.0] for row in probs]
  assert metrics.per_class_accuracy(_log(probs4), labels, 4) == [0.5, 1.0, 1.0, None]


def test_accuracy_ties_go_to_lowest_index():
  log_probs = _log([[.5, .5], [.5, .5]])
  assert metrics.accuracy(log_probs, np.array([0, 1])) == 0.5


# ----------------------------------------------------------------------- ECE


def test_ece_by_hand_four_examples():
  # S = 5 bins (0,.2] (.2,.4] (.4,.6] (.6,.8] (.8,1].
  #   ex0 [.9 .1] y=0: conf .90 correct -> bin (.8,1]
  #   ex1 [.2 .8] y=0: conf .80 wrong   -> bin (.6,.8]  (on the edge .8: lower bin)
  #   ex2 [.65 .35] y=0: conf .65 correct -> bin (.6,.8]
  #   ex3 [.55 .45] y=1: conf .55 wrong  -> bin (.4,.6]
  # (.4,.6]: 1/4 * |0 - .55|             = .1375
  # (.6,.8]: 2/4 * |.5 - (.8 + .65)/2|   = .5 * .225 = .1125
  # (.8,1]:  1/4 * |1 - .9|              = .025
  # ECE = .275  (were .8 put in the upper bin it would be .1375 + .0875 + .175 = .4)
  probs = [[.9, .1], [.2, .8], [.65, .35], [.55, .45]]
  labels = np.array([0, 0, 0, 1])
  assert metrics.expected_calibration_error(_log(probs), labels, num_bins=5) == pytest.approx(.275)
  assert _ref_ece(np.asarray(probs), labels, 5) == pytest.approx(.275)


def test_ece_confidence_one_goes_in_last_bin():
  # Two confident correct predictions (conf exactly 1.0): last bin, acc 1, conf 1 -> 0.
  log_probs = _log([[1.0, 0.0], [0.0, 1.0]])
  labels = np.array([0, 1])
  assert metrics.expected_calibration_error(log_probs, labels, num_bins=10) == 0.0
  # The same, both wrong: |0 - 1| = 1.
  assert metrics.expected_calibration_error(log_probs, labels[::-1].copy(), num_bins=10) == 1.0


def test_ece_perfectly_calibrated_set_is_zero():
  # Confidence c in {.55, .65, .75, .85, .95}, 20 examples each, 20c of them correct:
  # in every bin of width .1 accuracy equals confidence.
  rows, labels = [], []
  for c in (.55, .65, .75, .85, .95):
    num_correct = round(20 * c)
    for j in range(20):
      rows.append([c, 1 - c])
      labels.append(0 if j < num_correct else 1)
  ece = metrics.expected_calibration_error(_log(rows), np.array(labels), num_bins=10)
  assert ece == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize('num_bins', [1, 7, 15])
def test_ece_matches_loop_reference(num_bins):
  rng = np.random.default_rng(0)
  log_probs = _random_log_probs(rng, 200, 10)
  labels = rng.integers(0, 10, size=200)
  got = metrics.expected_calibration_error(log_probs, labels, num_bins=num_bins)
  assert got == pytest.approx(_ref_ece(np.exp(log_probs), labels, num_bins), abs=1e-12)


# ----------------------------------------------------------------- Brier, NLL


def test_brier_by_hand():
  # One-hot and correct: (1-1)^2 + 0^2 + 0^2 = 0.
  assert metrics.brier_score(_log([[0.0, 1.0, 0.0]]), np.array([1])) == 0.0
  # Uniform over K: (1 - 1/K)^2 + (K-1)(1/K)^2 = (K-1)^2/K^2 + (K-1)/K^2 = (K-1)/K.
  # K = 4: (3/4)^2 + 3/16 = 9/16 + 3/16 = 12/16 = .75.
  uniform = np.full((3, 4), -math.log(4.0))
  assert metrics.brier_score(uniform, np.array([0, 1, 3])) == pytest.approx(0.75)
  # One-hot and wrong: 1 + 1 = 2.
  assert metrics.brier_score(_log([[1.0, 0.0]]), np.array([1])) == 2.0
  # [.7 .2 .1], y=0: .09 + .04 + .01 = .14.
  assert metrics.brier_score(_log([[.7, .2, .1]]), np.array([0])) == pytest.approx(.14)


def test_nll_by_hand():
  # -(log .5 + log .25)/2 = (ln 2 + 2 ln 2)/2 = 1.5 ln 2.
  log_probs = _log([[.5, .5], [.75, .25]])
  assert metrics.negative_log_likelihood(log_probs, np.array([0, 1])) == pytest.approx(
      1.5 * math.log(2.0))
  assert metrics.negative_log_likelihood(_log([[1.0, 0.0]]), np.array([1])) == math.inf


def test_brier_nll_accuracy_match_loop_references():
  rng = np.random.default_rng(1)
  log_probs = _random_log_probs(rng, 100, 7).astype(np.float32)
  labels = rng.integers(0, 7, size=100).astype(np.int32)
  probs = np.exp(log_probs.astype(np.float64))
  assert metrics.brier_score(log_probs, labels) == pytest.approx(_ref_brier(probs, labels))
  assert metrics.negative_log_likelihood(log_probs, labels) == pytest.approx(
      _ref_nll(probs, labels))
  assert metrics.accuracy(log_probs, labels) == pytest.approx(_ref_accuracy(probs, labels))


# -------------------------------------------------------------- sampling bias


def test_sampling_bias_by_hand():
  assert metrics.sampling_bias(np.array([5, 5, 5, 5])) == pytest.approx(0.0, abs=1e-12)
  assert metrics.sampling_bias(np.array([3, 3, 3])) == pytest.approx(0.0, abs=1e-12)
  assert metrics.sampling_bias(np.array([0, 9, 0])) == 1.0
  # [2,1,1]: p = (1/2, 1/4, 1/4), H = 1/2 ln 2 + 2 * 1/4 ln 4 = 1.5 ln 2 = 1.0397;
  # SB = 1 - 1.5 ln 2 / ln 3 = 1 - 1.0397 / 1.0986 = 0.0536054.
  assert metrics.sampling_bias(np.array([2, 1, 1])) == pytest.approx(0.05360536964281404)
  # An empty class counts (0 log 0 = 0) and K includes it: [1, 1, 0, 0] -> 1 - ln 2 / ln 4 = .5.
  assert metrics.sampling_bias(np.array([1, 1, 0, 0])) == pytest.approx(0.5)


# --------------------------------------------------------------------- AUROC


def test_ood_auroc():
  assert metrics.ood_auroc(np.array([.9, .8, .7]), np.array([.1, .2])) == 1.0
  assert metrics.ood_auroc(np.array([.1, .2]), np.array([.9, .8, .7])) == 0.0
  assert metrics.ood_auroc(np.array([.5]), np.array([.5])) == 0.5
  # Pairs (in, out) with in > out: (.9,.5) (.9,.1) (.4,.1); not (.4,.5) -> 3/4.
  assert metrics.ood_auroc(np.array([.9, .4]), np.array([.5, .1])) == pytest.approx(.75)


def test_max_softmax_probability():
  msp = metrics.max_softmax_probability(_log([[.2, .8], [.6, .4]]))
  np.testing.assert_allclose(msp, [.8, .6])


# ---------------------------------------------------------------- combined


def test_evaluation_metrics_is_json_and_consistent():
  rng = np.random.default_rng(3)
  log_probs = _random_log_probs(rng, 50, 5)
  labels = rng.integers(0, 4, size=50)  # class 4 absent
  result = metrics.evaluation_metrics(log_probs, labels, 5, num_bins=10)
  json.dumps(result, allow_nan=False)
  assert result == {
      'num_examples': 50,
      'accuracy': metrics.accuracy(log_probs, labels),
      'per_class_accuracy': metrics.per_class_accuracy(log_probs, labels, 5),
      'ece': metrics.expected_calibration_error(log_probs, labels, num_bins=10),
      'brier': metrics.brier_score(log_probs, labels),
      'nll': metrics.negative_log_likelihood(log_probs, labels),
  }
  assert result['per_class_accuracy'][4] is None


# ------------------------------------------------------------- bad inputs

_GOOD = _log([[.5, .5], [.9, .1]])


@pytest.mark.parametrize('call', [
    lambda: metrics.accuracy(np.zeros(3), np.array([0, 1, 2])),           # 1-D log_probs
    lambda: metrics.accuracy(np.zeros((0, 2)), np.zeros(0, int)),          # no rows
    lambda: metrics.accuracy(_GOOD, np.array([0, 1, 1])),                 # length mismatch
    lambda: metrics.accuracy(_GOOD, np.array([[0, 1]])),                  # 2-D labels
    lambda: metrics.accuracy(_GOOD, np.array([0., 1.])),                  # float labels
    lambda: metrics.accuracy(_GOOD, np.array([0, 2])),                    # label out of range
    lambda: metrics.accuracy(np.array([[1, 0]]), np.array([0])),          # int log_probs
    lambda: metrics.accuracy(np.array([[2.0, 1.0]]), np.array([0])),      # logits, not log-probs
    lambda: metrics.accuracy(np.array([[np.nan, 0.0]]), np.array([0])),   # NaN
    lambda: metrics.per_class_accuracy(_GOOD, np.array([0, 1]), 3),       # num_classes != K
    lambda: metrics.expected_calibration_error(_GOOD, np.array([0, 1]), num_bins=0),
    lambda: metrics.brier_score(_GOOD[None], np.array([0, 1])),           # 3-D
    lambda: metrics.negative_log_likelihood(_GOOD, np.array([-1, 0])),
    lambda: metrics.evaluation_metrics(_GOOD, np.array([0, 1]), 2, num_bins=1.5),
    lambda: metrics.sampling_bias(np.array([[1, 2], [3, 4]])),            # 2-D
    lambda: metrics.sampling_bias(np.array([7])),                         # K = 1
    lambda: metrics.sampling_bias(np.array([0, 0, 0])),                   # empty pool
    lambda: metrics.sampling_bias(np.array([3, -1])),                     # negative count
    lambda: metrics.ood_auroc(np.array([]), np.array([.5])),              # empty in
    lambda: metrics.ood_auroc(np.array([.5]), np.array([[.5]])),          # 2-D out
    lambda: metrics.ood_auroc(np.array([.5, np.inf]), np.array([.5])),    # inf
    lambda: metrics.max_softmax_probability(np.zeros((2, 2, 2))),
])
def test_bad_inputs_raise_one_line_value_error(call):
  with pytest.raises(ValueError) as info:
    call()
  assert '\n' not in str(info.value) and str(info.value)
