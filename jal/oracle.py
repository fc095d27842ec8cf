"""The oracle: answers label queries, optionally with symmetric label noise."""

from __future__ import annotations

import numpy as np

from jal.errors import JalError


def noisy_labels(true_labels: np.ndarray, noise_rate: float, num_classes: int,
                 rng: np.random.Generator) -> np.ndarray:
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
    rng: generator that fixes which labels flip and to what.

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
  flip = rng.choice(labels.size, num_wrong, replace=False)
  # Adding an offset in [1, K-1] modulo K gives a uniform wrong class.
  offset = rng.integers(1, num_classes, size=num_wrong)
  labels[flip] = (labels[flip] + offset) % num_classes
  return labels
