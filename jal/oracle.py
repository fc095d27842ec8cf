"""The oracle: who answers a query with labels.

The loop asks the oracle for the labels of every query (and of the initial
pool) and never reads true labels itself; strategies never see the oracle.
`SimulatedOracle` answers from the labels a dataset already holds,
optionally with label noise: every experiment of the papers. `HumanOracle`
is a person answering through files between runs (`jal.human`): the loop
stops after a query it asks, and the answers arrive with the next run.
`make_oracle` chooses by ``config.oracle.name``.
"""

from __future__ import annotations

import abc

import ml_collections
import numpy as np

from jal import rng
from jal.errors import JalError

NAMES = ('simulated', 'human')


class Oracle(abc.ABC):
  """Answers label queries."""

  # True for an oracle that answers later, through files (`HumanOracle`).
  asks_a_person = False

  @abc.abstractmethod
  def label(self, indices: np.ndarray, round_: int) -> np.ndarray:
    """The labels of the train examples ``indices`` (int ``[n]``).

    ``round_`` is the round whose labeled pool they join: 0 for the initial
    pool, ``r + 1`` for the query of round ``r``. Returns int32 ``[n]``.
    """

  @abc.abstractmethod
  def true_labels(self, indices: np.ndarray) -> np.ndarray:
    """The ground truth of ``indices``, as far as it is known, for the records.

    In a simulation the dataset's labels (what ``query_class_counts`` and the
    class-count plots count); an oracle that knows no more than its answers
    returns those.
    """


def noisy_labels(true_labels: np.ndarray, noise_rate: float, num_classes: int,
                 rng_: np.random.Generator) -> np.ndarray:
  """Labels as an imperfect oracle returns them.

  Symmetric label noise (PAL, Bhatnagar et al., Sec. 4.2: "randomly assigning
  incorrect labels to a subset of the labeled pool and the queried set"):
  exactly ``round(noise_rate * n)`` of the ``n`` labels, chosen at random, are
  replaced by a class drawn uniformly from the ``num_classes - 1`` wrong ones.

  Args:
    true_labels: int with shape ``[n]``: the ground truth of the queried
      examples.
    noise_rate: fraction of labels to corrupt, in ``[0, 1]``.
    num_classes: number of classes ``K`` (at least 2 when noise_rate > 0).
    rng_: generator that fixes which labels flip and to what.

  Returns:
    int32 with shape ``[n]``.

  Raises:
    JalError: if noise_rate is outside [0, 1].
  """
  if not 0.0 <= noise_rate <= 1.0:
    raise JalError(f'config.oracle.noise_rate={noise_rate} must be in [0, 1]')
  labels = np.asarray(true_labels, np.int32).copy()
  num_wrong = int(round(noise_rate * labels.size))
  if num_wrong == 0:
    return labels
  flip = rng_.choice(labels.size, num_wrong, replace=False)
  # Adding an offset in [1, K-1] modulo K gives a uniform wrong class.
  offset = rng_.integers(1, num_classes, size=num_wrong)
  labels[flip] = (labels[flip] + offset) % num_classes
  return labels


class SimulatedOracle(Oracle):
  """Answers from a dataset's labels, with ``noise_rate`` of each answer wrong.

  Each round's answers draw their noise from the ``(seed, 'oracle', round)``
  stream, so a resumed run gets the same answers.

  Args:
    true_labels: int ``[N]``, the train split's labels (kept from everyone
      else); or uint8 ``[N, H, W]`` masks for segmentation.
    num_classes: ``K``.
    noise_rate: the fraction of wrong answers, in ``[0, 1]`` (`noisy_labels`).
    seed: the experiment's seed.

  Raises:
    JalError: a noise rate outside ``[0, 1]``, noise with fewer than two
      classes, or noise on masks (PAL's label noise flips image labels; no
      paper defines it per pixel).
  """

  def __init__(self, true_labels: np.ndarray, num_classes: int, noise_rate: float, seed: int):
    if not 0.0 <= noise_rate <= 1.0:
      raise JalError(f'config.oracle.noise_rate={noise_rate} must be in [0, 1]')
    if noise_rate > 0 and num_classes < 2:
      raise JalError(f'config.oracle.noise_rate={noise_rate} needs at least 2 classes to flip '
                     f'between; the dataset has {num_classes}')
    true_labels = np.asarray(true_labels)
    if true_labels.ndim > 1 and noise_rate > 0:
      raise JalError(f'config.oracle.noise_rate={noise_rate}: label noise flips an image\'s '
                     'class (PAL, Sec. 4.2) and is not defined for masks; set it to 0')
    self._true = true_labels.astype(np.int32 if true_labels.ndim == 1 else np.uint8)
    self.num_classes = num_classes
    self.noise_rate = noise_rate
    self.seed = seed

  def label(self, indices: np.ndarray, round_: int) -> np.ndarray:
    if self._true.ndim > 1:
      return self._true[np.asarray(indices, np.int64)]
    return noisy_labels(self._true[np.asarray(indices, np.int64)], self.noise_rate,
                        self.num_classes, rng.numpy_rng(self.seed, 'oracle', round_))

  def true_labels(self, indices: np.ndarray) -> np.ndarray:
    return self._true[np.asarray(indices, np.int64)]


class HumanOracle(Oracle):
  """A person, answering each query through a label file (`jal.human`).

  It cannot answer at once: the loop writes the query to files and stops,
  and the next run imports the answers. What it knows are the labels given
  so far (the labeling project's ``labeled/`` images, then every answer).

  Args:
    known_labels: int ``[N]``: the labels known at the start, -1 where
      unknown; or uint8 masks ``[N, H, W]``, all 255 (void) where unknown.
    skip_label: the answer that takes an image out of the pool.
  """

  asks_a_person = True

  def __init__(self, known_labels: np.ndarray, skip_label: str):
    known_labels = np.asarray(known_labels)
    self._known = known_labels.astype(np.int32 if known_labels.ndim == 1 else np.uint8)
    self.skip_label = skip_label

  def known(self, indices: np.ndarray) -> np.ndarray:
    """bool ``[n]``: whether each image's label is known (a mask: any pixel not void)."""
    labels = self._known[np.asarray(indices, np.int64)]
    if labels.ndim == 1:
      return labels >= 0
    return (labels != 255).reshape(labels.shape[0], -1).any(axis=1)

  def label(self, indices: np.ndarray, round_: int) -> np.ndarray:
    raise JalError('a person answers queries through label files: run again with --labels FILE')

  def true_labels(self, indices: np.ndarray) -> np.ndarray:
    return self._known[np.asarray(indices, np.int64)]

  def learn(self, labeled: np.ndarray, labels: np.ndarray) -> None:
    """Takes the answers of ``labeled`` (int ``[L]``) as known (``labels``: int ``[L]``,
    or masks ``[L, H, W]``)."""
    if np.size(labeled) == 0:
      return
    self._known[np.asarray(labeled, np.int64)] = labels


def make_oracle(config: ml_collections.ConfigDict, true_labels: np.ndarray,
                num_classes: int) -> Oracle:
  """The oracle of ``config.oracle.name``: ``'simulated'`` (with ``noise_rate``),
  or ``'human'`` (with ``skip_label``), whose ``true_labels`` are the labels
  known at the start (-1 for unlabeled images).

  Raises:
    JalError: an unknown name or a bad setting.
  """
  name = config.oracle.get('name', 'simulated')
  if name not in NAMES:
    raise JalError(f"config.oracle.name='{name}' is unknown; use one of {', '.join(NAMES)}")
  if name == 'human':
    if config.dataset.name != 'project':
      raise JalError("config.oracle.name='human' labels a labeling project: set "
                     'config.dataset.name=project and config.dataset.path to its folder')
    if config.oracle.noise_rate:
      raise JalError(f'config.oracle.noise_rate={config.oracle.noise_rate} simulates wrong '
                     "answers; a person's are as given: set it to 0")
    return HumanOracle(true_labels, config.oracle.skip_label)
  if (np.asarray(true_labels) < 0).any():
    raise JalError(f'dataset {config.dataset.name!r} has unlabeled train images, which a '
                   "simulated oracle cannot answer: set config.oracle.name=human")
  return SimulatedOracle(true_labels, num_classes, config.oracle.noise_rate, config.seed)
