"""Host-side evaluation metrics for a classifier's predictive distribution.

The metrics of the SCAL paper (Krishnan et al., "Mitigating Sampling Bias and
Improving Robustness in Active Learning", 2021, Sec. 4.2 and App. B):
test accuracy, sampling bias of the labeled pool (Eqs. 4-5), expected
calibration error (Eq. 6), Brier score, negative log-likelihood and OOD AUROC
(the Gaussian-blur shift they are measured under is `jal.data.corruptions`).

Everything here is pure NumPy on host arrays (a ``jax.Array`` is accepted and
copied to host by ``np.asarray``) and returns plain Python numbers, so a
result can go straight into ``results.jsonl``. Predictions come in as
``log_probs``: float ``[n, K]`` log-softmax rows (``jax.nn.log_softmax`` of
the logits), so a probability of exactly 0 (``-inf``) is representable and
``exp`` gives the softmax without a second normalisation. Rows must be
normalised: ``|logsumexp(row)| <= 1e-2`` (`LOG_NORM_TOLERANCE`), which catches
logits passed by mistake while admitting float32 and bfloat16 log-softmax output
(bfloat16 rounding leaves rows off by up to about 3e-3). Rows are used as given,
not renormalised, so that exactly representable probabilities keep their exact
bin in the ECE. The arithmetic is float64 whatever the input dtype.

Ties in the arg-max (the predicted class) go to the lowest class index, as in
``np.argmax`` and ``jnp.argmax``.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special
import sklearn.metrics

# Largest |logsumexp(row)| accepted as a normalised log-softmax row.
LOG_NORM_TOLERANCE = 1e-2

# ----------------------------------------------------------------- validation


def _as_log_probs(log_probs) -> np.ndarray:
  """Checks ``log_probs`` and returns it as float64 ``[n, K]``.

  Raises:
    ValueError: not 2-D, no rows or columns, not a float dtype, a NaN or
      ``+inf`` entry, or a row whose ``logsumexp`` is off 0 by more than
      `LOG_NORM_TOLERANCE`.
  """
  array = np.asarray(log_probs)
  if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
    raise ValueError(f'log_probs must be float [n, K] with n, K >= 1, got shape {array.shape}')
  if array.dtype.kind != 'f' and array.dtype.name != 'bfloat16':
    raise ValueError(f'log_probs must be a float array, got dtype {array.dtype}')
  array = array.astype(np.float64)
  if np.isnan(array).any() or np.isposinf(array).any():
    raise ValueError('log_probs contains NaN or +inf')
  norm = scipy.special.logsumexp(array, axis=1)
  worst = float(np.max(np.abs(norm)))
  if not worst <= LOG_NORM_TOLERANCE:
    raise ValueError(f'log_probs rows are not log-softmax normalised (max |logsumexp| = '
                     f'{worst:.3g} > {LOG_NORM_TOLERANCE}); pass log_softmax(logits), not logits')
  return array


def _as_labels(labels, n: int, num_classes: int) -> np.ndarray:
  """Checks ``labels`` (int ``[n]`` in ``[0, num_classes)``); returns int64.

  Raises:
    ValueError: wrong shape, not an integer dtype, or a label out of range.
  """
  array = np.asarray(labels)
  if array.shape != (n,):
    raise ValueError(f'labels must be int [n] with n = {n}, got shape {array.shape}')
  if array.dtype.kind not in 'iu':
    raise ValueError(f'labels must be an integer array, got dtype {array.dtype}')
  if n and (array.min() < 0 or array.max() >= num_classes):
    raise ValueError(f'labels must lie in [0, {num_classes}), got range '
                     f'[{array.min()}, {array.max()}]')
  return array.astype(np.int64)


def _checked(log_probs, labels) -> tuple[np.ndarray, np.ndarray]:
  lp = _as_log_probs(log_probs)
  return lp, _as_labels(labels, lp.shape[0], lp.shape[1])


def _check_num_bins(num_bins) -> int:
  if isinstance(num_bins, bool) or not isinstance(num_bins, (int, np.integer)) or num_bins < 1:
    raise ValueError(f'num_bins must be an int >= 1, got {num_bins!r}')
  return int(num_bins)


def _check_num_classes(num_classes, lp: np.ndarray) -> int:
  if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)):
    raise ValueError(f'num_classes must be an int, got {num_classes!r}')
  if num_classes != lp.shape[1]:
    raise ValueError(f'num_classes = {num_classes} but log_probs has {lp.shape[1]} columns')
  return int(num_classes)


# -------------------------------------------------------------- computations
# Private, on already-validated float64 log-probs and int64 labels.


def _correct(lp: np.ndarray, labels: np.ndarray) -> np.ndarray:
  return np.argmax(lp, axis=1) == labels


def _per_class_accuracy(lp, labels, num_classes) -> list[float | None]:
  correct = _correct(lp, labels)
  out: list[float | None] = []
  for c in range(num_classes):
    of_class = labels == c
    count = int(of_class.sum())
    out.append(float(correct[of_class].sum()) / count if count else None)
  return out


def _bin_index(confidence: np.ndarray, num_bins: int) -> np.ndarray:
  # searchsorted 'left' gives i with edges[i-1] < c <= edges[i]: right-closed bins.
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  return np.clip(np.searchsorted(edges, confidence, side='left') - 1, 0, num_bins - 1)


def _ece(lp, labels, num_bins) -> float:
  confidence = np.exp(np.max(lp, axis=1))
  correct = _correct(lp, labels).astype(np.float64)
  bins = _bin_index(confidence, num_bins)
  n = lp.shape[0]
  acc_sum = np.bincount(bins, weights=correct, minlength=num_bins)
  conf_sum = np.bincount(bins, weights=confidence, minlength=num_bins)
  # sum_s |B_s|/n |acc(B_s) - conf(B_s)| = sum_s |sum_{B_s} correct - sum_{B_s} conf| / n.
  return float(np.sum(np.abs(acc_sum - conf_sum)) / n)


def _brier(lp, labels) -> float:
  probs = np.exp(lp)
  one_hot = np.zeros_like(probs)
  one_hot[np.arange(lp.shape[0]), labels] = 1.0
  return float(np.mean(np.sum((probs - one_hot) ** 2, axis=1)))


def _nll(lp, labels) -> float:
  return float(-np.mean(lp[np.arange(lp.shape[0]), labels]))


# ------------------------------------------------------------------- metrics


def accuracy(log_probs: np.ndarray, labels: np.ndarray) -> float:
  """Top-1 accuracy: ``(1/n) sum_i [argmax_k log_probs[i, k] == labels[i]]``.

  SCAL (Krishnan et al. 2021) Sec. 4.2, "test accuracy". Ties go to the lowest index.

  Args:
    log_probs: float ``[n, K]``, log-softmax rows (see the module docstring).
    labels: int ``[n]``, true classes in ``[0, K)``.

  Returns:
    A fraction in ``[0, 1]``.

  Raises:
    ValueError: bad shapes, dtypes, unnormalised rows or out-of-range labels.
  """
  lp, y = _checked(log_probs, labels)
  return float(np.mean(_correct(lp, y)))


def per_class_accuracy(log_probs: np.ndarray, labels: np.ndarray,
                       num_classes: int) -> list[float | None]:
  """Accuracy among the examples of each true class (per-class recall).

  ``acc_c = |{i : y_i = c, argmax_k p_ik = c}| / |{i : y_i = c}|``, the
  per-class view of test accuracy used for the class-imbalance scenarios
  (TA-VAAL's imbalanced CIFAR-10, MAL's imbalanced CIFAR-100).

  A class absent from ``labels`` gets ``None``, not NaN: its accuracy is
  undefined (0/0), ``None`` keeps the dict strict JSON (``json.dumps`` writes
  NaN as the non-standard token ``NaN``), and ``np.asarray(result,
  dtype=float)`` turns ``None`` into NaN for ``np.nanmean``.

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.
    labels: int ``[n]`` in ``[0, K)``.
    num_classes: ``K``; must equal ``log_probs.shape[1]``.

  Returns:
    ``K`` entries, each a fraction in ``[0, 1]`` or ``None``.

  Raises:
    ValueError: bad shapes or dtypes, or ``num_classes`` disagreeing with
      ``log_probs``.
  """
  lp, y = _checked(log_probs, labels)
  return _per_class_accuracy(lp, y, _check_num_classes(num_classes, lp))


def expected_calibration_error(log_probs: np.ndarray, labels: np.ndarray,
                               num_bins: int = 15) -> float:
  """Expected calibration error, SCAL (Krishnan et al. 2021) Eq. 6 (Naeini et al., 2015).

  ``ECE = sum_{s=1..S} |B_s|/n |acc(B_s) - conf(B_s)|`` where the confidence of
  example ``i`` is its maximum softmax probability ``max_k p_ik``, ``B_s`` are
  the examples whose confidence falls in bin ``s``, ``acc(B_s)`` is the
  fraction of them whose arg-max is correct and ``conf(B_s)`` their mean
  confidence. Empty bins contribute 0.

  Bins: ``S`` equal-width, right-closed intervals ``(e_{s-1}, e_s]`` with edges
  ``e = np.linspace(0, 1, S + 1)`` (the convention of Guo et al., ICML 2017),
  so a confidence exactly on an inner edge ``e_s`` falls in the lower bin
  ``s``, and confidence 1.0 falls in the last bin. (Confidence 0 cannot occur
  for a normalised row, whose max is at least ``1/K``; it would go in the first
  bin.) The paper does not give ``S``; 15 follows Guo et al. 2017.

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.
    labels: int ``[n]`` in ``[0, K)``.
    num_bins: ``S >= 1``.

  Returns:
    The ECE, in ``[0, 1]`` (a fraction, not a percentage).

  Raises:
    ValueError: bad shapes, dtypes, rows or ``num_bins``.
  """
  lp, y = _checked(log_probs, labels)
  return _ece(lp, y, _check_num_bins(num_bins))


def brier_score(log_probs: np.ndarray, labels: np.ndarray) -> float:
  """Multi-class Brier score: ``(1/n) sum_i sum_k (p_ik - y_ik)^2``.

  Brier (1950), as a strictly proper scoring rule in Gneiting & Raftery
  (2007); ``y_i`` is the one-hot label. Range ``[0, 2]``: 0 for a confident
  correct prediction, ``(K - 1)/K`` for the uniform prediction, 2 for a
  confident wrong one. SCAL (Krishnan et al. 2021, App. B.1, Fig. F2) cites Brier 1950 but
  gives no formula and plots "1 + Brier for easier readability", which suggests
  its raw score was ``tfp.stats.brier_score``, ``sum_k p_k^2 - 2 p_y`` (this
  score minus 1, range ``[-1, 1]``); Fig. F2's ``1 + Brier`` is then this
  function's value.

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.
    labels: int ``[n]`` in ``[0, K)``.

  Returns:
    The mean Brier score.

  Raises:
    ValueError: bad shapes, dtypes, rows or labels.
  """
  lp, y = _checked(log_probs, labels)
  return _brier(lp, y)


def negative_log_likelihood(log_probs: np.ndarray, labels: np.ndarray) -> float:
  """Mean negative log-likelihood ``-(1/n) sum_i log p_{i, y_i}``, in nats.

  The test cross-entropy (SCAL, Krishnan et al. 2021, does not report it;
  jal records it every round). ``inf`` when some true class has probability 0
  (``log_probs = -inf``).

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.
    labels: int ``[n]`` in ``[0, K)``.

  Returns:
    The mean NLL in nats, ``>= 0`` up to the normalisation tolerance.

  Raises:
    ValueError: bad shapes, dtypes, rows or labels.
  """
  lp, y = _checked(log_probs, labels)
  return _nll(lp, y)


def sampling_bias(class_counts: np.ndarray) -> float:
  """Sampling bias of a labeled pool, SCAL (Krishnan et al. 2021) Eqs. 4-5.

  ``SB = 1 - H_DL / H_balanced`` with ``H_DL = -sum_k (M_k/M) log(M_k/M)``
  (Eq. 5), ``M = sum_k M_k``, and ``H_balanced = log K`` the entropy of the
  balanced histogram. A class with ``M_k = 0`` contributes 0 (``0 log 0 = 0``).
  0 for a balanced pool, 1 when every sample is of one class; the log base
  cancels. The result is clipped to ``[0, 1]`` against rounding.

  ``class_counts`` must cover all ``K`` classes of the task, zeros included
  (``np.bincount(pool_labels, minlength=K)``): ``K`` sets ``H_balanced``.

  Args:
    class_counts: int or float ``[K]``, ``K >= 2``, the labeled pool's class
      histogram (non-negative, finite, not all zero).

  Returns:
    The sampling bias in ``[0, 1]``.

  Raises:
    ValueError: not 1-D, ``K < 2``, a non-numeric dtype, a negative or
      non-finite count, or an all-zero histogram.
  """
  counts = np.asarray(class_counts)
  if counts.ndim != 1 or counts.shape[0] < 2:
    raise ValueError(f'class_counts must be [K] with K >= 2, got shape {counts.shape}')
  if counts.dtype.kind not in 'iuf':
    raise ValueError(f'class_counts must be int or float, got dtype {counts.dtype}')
  counts = counts.astype(np.float64)
  if not np.all(np.isfinite(counts)) or np.any(counts < 0):
    raise ValueError('class_counts must be finite and non-negative')
  total = counts.sum()
  if total == 0:
    raise ValueError('class_counts is all zero: the sampling bias of an empty pool is undefined')
  p = counts[counts > 0] / total
  entropy = -float(np.sum(p * np.log(p)))
  return min(max(1.0 - entropy / math.log(counts.shape[0]), 0.0), 1.0)


def max_softmax_probability(log_probs: np.ndarray) -> np.ndarray:
  """Maximum softmax probability ``max_k p_ik`` (Hendrycks & Gimpel, ICLR 2017).

  The confidence of `expected_calibration_error` and the default
  in-distribution score of `ood_auroc` (higher means more in-distribution).

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.

  Returns:
    float64 ``[n]`` in ``[1/K, 1]``.

  Raises:
    ValueError: bad shape, dtype or rows.
  """
  return np.exp(np.max(_as_log_probs(log_probs), axis=1))


def _as_scores(scores, name: str) -> np.ndarray:
  array = np.asarray(scores)
  if array.ndim != 1 or array.shape[0] == 0:
    raise ValueError(f'{name} must be [m] with m >= 1, got shape {array.shape}')
  if array.dtype.kind not in 'iuf' and array.dtype.name != 'bfloat16':
    raise ValueError(f'{name} must be numeric, got dtype {array.dtype}')
  array = array.astype(np.float64)
  if not np.all(np.isfinite(array)):
    raise ValueError(f'{name} contains NaN or inf')
  return array


def ood_auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
  """Area under the ROC curve for telling in- from out-of-distribution inputs.

  ``sklearn.metrics.roc_auc_score`` with in-distribution examples as the
  positive class (label 1) and OOD as label 0: the probability that a random
  in-distribution example scores higher than a random OOD one, ties counting
  one half (Davis & Goadrich, 2006, as cited by SCAL, Krishnan et al. 2021, Sec. 4.2).
  Scores must therefore grow with "in-distribution-ness": pass
  `max_softmax_probability`, or the negation of an uncertainty score such as
  entropy. SCAL's Fig. 4a uses each strategy's own acquisition score rather
  than MSP; which score to pass is the caller's choice.

  Args:
    in_scores: float ``[n_in]``, scores on the in-distribution test set.
    out_scores: float ``[n_out]``, scores on the OOD set.

  Returns:
    AUROC in ``[0, 1]``: 1 for perfect separation, 0.5 for chance, 0 when
    every OOD example outscores every in-distribution one.

  Raises:
    ValueError: either array not 1-D, empty, non-numeric or non-finite.
  """
  pos = _as_scores(in_scores, 'in_scores')
  neg = _as_scores(out_scores, 'out_scores')
  y_true = np.concatenate([np.ones(pos.shape[0]), np.zeros(neg.shape[0])])
  return float(sklearn.metrics.roc_auc_score(y_true, np.concatenate([pos, neg])))


def evaluation_metrics(log_probs: np.ndarray, labels: np.ndarray, num_classes: int, *,
                       num_bins: int = 15) -> dict:
  """Accuracy, per-class accuracy, ECE, Brier and NLL of one test split.

  Validates once and computes each metric as its public function does.

  Args:
    log_probs: float ``[n, K]``, log-softmax rows.
    labels: int ``[n]`` in ``[0, K)``.
    num_classes: ``K``; must equal ``log_probs.shape[1]``.
    num_bins: ``S`` for the ECE.

  Returns:
    A JSON-serialisable dict (strict JSON unless NLL is ``inf``):
    ``num_examples`` int; ``accuracy``, ``ece``, ``brier``, ``nll`` floats
    (see `accuracy`, `expected_calibration_error`, `brier_score`,
    `negative_log_likelihood`); ``per_class_accuracy`` list of ``K`` floats or
    ``None`` (see `per_class_accuracy`).

  Raises:
    ValueError: as the individual metrics.
  """
  lp, y = _checked(log_probs, labels)
  num_classes = _check_num_classes(num_classes, lp)
  num_bins = _check_num_bins(num_bins)
  return {
      'num_examples': int(lp.shape[0]),
      'accuracy': float(np.mean(_correct(lp, y))),
      'per_class_accuracy': _per_class_accuracy(lp, y, num_classes),
      'ece': _ece(lp, y, num_bins),
      'brier': _brier(lp, y),
      'nll': _nll(lp, y),
  }
