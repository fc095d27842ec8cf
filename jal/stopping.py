"""Signals of when to stop labeling, measured every round.

Two kinds, recorded in ``results.jsonl`` and drawn under the accuracy plot;
jal stops nothing by itself (the number of rounds is the config's), and the
rule is the user's (README, "When to stop labeling").

- **Stabilising predictions** (Bloodgood & Vijay-Shanker, CoNLL 2009): a
  fixed *stop set* of examples, drawn once, is never labeled for the
  purpose; each round the task model predicts it, and Cohen's kappa
  between this round's and the last round's predictions measures how much
  the model still changes. Their rule stops once the mean kappa of the last
  three rounds exceeds 0.99, a threshold the user adjusts.

  The stop set is a random sample of the whole train split (`stop_set`),
  drawn from ``config.seed`` alone, so every strategy of a seed shares it.
  Examples in it may be in the labeled pool or get queried later: as in
  the paper, it is drawn once and not changed as labeling proceeds, and it
  needs no labels. (Kurlandski & Bloodgood, 2022, found such fixed,
  representative stop sets work better than the shrinking unlabeled pool,
  which the queries bias.) The last round's predictions are part of the
  checkpoint (`jal.checkpoint.RunState.stop_predictions`), so a resumed
  run records the same kappa as an uninterrupted one.

- **The candidates' uncertainty** (Zhu, Wang & Hovy, COLING 2008:
  "max-confidence", stop when the most uncertain unlabeled example is
  certain enough, and "overall-uncertainty", when their mean uncertainty
  is low): the mean and the maximum predictive entropy of the task model
  over the round's candidates (`jal.experiment.candidates`), divided by
  ``log C`` so that 0 is certain and 1 uniform whatever the number of
  classes.

Both read the strategy's predictive distribution (the one the test
metrics read: the MC average for MC dropout) in one pass over the stop set
and the candidates. Classification only: for segmentation the stop set's
predictions would be masks, ``S x H x W`` classes in every checkpoint
(1 GB for 2,000 Cityscapes frames at 512 x 1024), and the candidates'
log-probabilities ``[n, H, W, C]`` on the host; the records of a
segmentation run have neither signal.
"""

from __future__ import annotations

from typing import Callable

import ml_collections
import numpy as np

from jal import rng
from jal.errors import JalError


def default_config() -> ml_collections.ConfigDict:
  """``config.stopping``: ``signals`` (False: neither signal, no extra pass) and
  ``stop_set_size`` (examples in the stop set; the whole train split when smaller)."""
  return ml_collections.ConfigDict(dict(signals=True, stop_set_size=2000))


def settings(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config.stopping``, or the defaults for a config without it."""
  return config.get('stopping') or default_config()


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses a bad ``config.stopping``.

  Raises:
    JalError: ``signals`` not a boolean, or ``stop_set_size`` not a positive integer.
  """
  on, size = settings(config).signals, settings(config).stop_set_size
  if not isinstance(on, bool):
    raise JalError(f'config.stopping.signals={on!r} must be True or False')
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise JalError(f'config.stopping.stop_set_size={size!r} must be a positive integer '
                   '(e.g. 2000; the whole train split is used when it is smaller)')


def enabled(config: ml_collections.ConfigDict, task_kind: str) -> bool:
  """Whether a round records the signals: classification with ``config.stopping.signals``."""
  return task_kind == 'classification' and settings(config).signals


def stop_set(seed: int, num_train: int, size: int) -> np.ndarray:
  """int64 ``[S]``, sorted: the stop set, ``S = min(size, num_train)`` train indices.

  Drawn without replacement from the whole train split by the ``'stop_set'``
  stream of ``seed`` (`jal.rng`); the whole split when ``size >= num_train``.
  """
  if size >= num_train:
    return np.arange(num_train, dtype=np.int64)
  chosen = rng.numpy_rng(seed, 'stop_set').choice(num_train, size, replace=False)
  return np.sort(chosen).astype(np.int64)


def cohens_kappa(a: np.ndarray, b: np.ndarray, num_classes: int) -> float:
  """Cohen's kappa of two labelings of the same examples (Cohen 1960).

  ``kappa = (p_o - p_e) / (1 - p_e)``, ``p_o`` the fraction of examples on
  which ``a`` and ``b`` agree, ``p_e = sum_c P_a(c) P_b(c)`` the agreement
  expected by chance from each labeling's class frequencies; the agreement
  measure of Bloodgood & Vijay-Shanker (2009), Sec. 3. 1 for identical
  labelings, 0 for chance agreement, negative below it. When ``p_e = 1``
  (both predict one and the same class everywhere, so they agree
  everywhere) the ratio is 0/0 and kappa is taken to be 1.

  Args:
    a, b: int ``[S]``, classes in ``[0, num_classes)``.
    num_classes: ``C``.

  Returns:
    kappa, in ``[-1, 1]``.
  """
  a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
  if a.shape != b.shape or a.ndim != 1 or a.size == 0:
    raise ValueError(f'two non-empty labelings of the same examples, got shapes {a.shape} '
                     f'and {b.shape}')
  observed = float(np.mean(a == b))
  expected = float(np.dot(np.bincount(a, minlength=num_classes),
                          np.bincount(b, minlength=num_classes))) / a.size**2
  if expected >= 1.0:
    return 1.0
  return (observed - expected) / (1.0 - expected)


def normalized_entropy(log_p: np.ndarray) -> np.ndarray:
  """float64 ``[n]``: ``H(p) / log C = -sum_c p_c log p_c / log C`` of log-probabilities
  ``[n, C]``, in ``[0, 1]`` (0 log 0 = 0).

  NumPy on the host, where the log-probabilities already are: the number of
  candidates changes every round, and a compiled entropy would compile anew
  for each.
  """
  log_p = np.asarray(log_p, np.float64)
  p = np.exp(log_p)
  h = -np.sum(p * np.where(p > 0, log_p, 0.0), axis=-1)
  return np.clip(h / np.log(log_p.shape[-1]), 0.0, 1.0)


def signals(predict: Callable[[np.ndarray], np.ndarray], stop: np.ndarray,
            candidates: np.ndarray, previous: np.ndarray | None
            ) -> tuple[dict, np.ndarray]:
  """A round's stopping signals, from one pass of ``predict`` over the stop set and candidates.

  Args:
    predict: float32 ``[n, C]`` log-probabilities of the task model over
      train indices (the strategy's predictive distribution).
    stop: int64 ``[S]``: the stop set (`stop_set`).
    candidates: int64 ``[n]``: this round's candidates (may be empty).
    previous: int32 ``[S]``: the last round's predictions on the stop set,
      or None in round 0.

  Returns:
    ``(fields, predictions)``: the record's ``stop_set_agreement`` (Cohen's
    kappa with ``previous``; None in round 0), ``stop_set_agreement_fraction``
    (the fraction of the stop set predicted alike; None in round 0),
    ``candidate_entropy_mean`` and ``candidate_entropy_max`` (`normalized_entropy`
    over the candidates; None without candidates); and this round's int32
    ``[S]`` predictions, for the next round.
  """
  log_p = predict(np.concatenate([stop, candidates]))
  num_classes = log_p.shape[-1]
  predictions = np.argmax(log_p[:stop.size], axis=-1).astype(np.int32)
  if previous is not None and np.shape(previous) != predictions.shape:
    raise JalError(f'the checkpoint holds predictions of {np.size(previous)} stop-set examples, '
                   f'the stop set has {predictions.size}; resume with the config that wrote it')
  fields = {'stop_set_agreement': None, 'stop_set_agreement_fraction': None,
            'candidate_entropy_mean': None, 'candidate_entropy_max': None}
  if previous is not None:
    fields['stop_set_agreement'] = cohens_kappa(previous, predictions, num_classes)
    fields['stop_set_agreement_fraction'] = float(np.mean(previous == predictions))
  if candidates.size:
    entropy = normalized_entropy(log_p[stop.size:])
    fields['candidate_entropy_mean'] = float(np.mean(entropy))
    fields['candidate_entropy_max'] = float(np.max(entropy))
  return fields, predictions
