"""DFM's acquisition function: feature reconstruction error (Krishnan et al. 2021, Sec. 3.2, Eq. 3).

Deep Feature Modeling fits one PCA per class to the labeled examples'
features ``z`` (before the last fully connected layer) and scores a
candidate by how far its feature lies from the subspace of the class the
task model predicts for it,

  S(x) = FRE(z | y = c_k) = || z - (T_k^+ o T_k)(z) ||_2,        (Eq. 3)

``T_k`` the forward PCA transform of class ``k`` (centre on the class mean,
project on the top components) and ``T_k^+`` its pseudo-inverse (map back and
add the mean). The query takes the highest errors: the candidates least
explained by what is labeled of their class.

Where the paper is silent:

- The number of components is ``num_components`` for every class, capped at
  the class's rank (at most ``n_k - 1`` for ``n_k`` labeled examples), since
  further directions would be arbitrary (SVD's null space). A class with one
  labeled example has no component: its error is the distance to that example.
- A candidate predicted as a class with no labeled example scores ``+inf``
  (no subspace explains it): it is queried first.

Where it runs: the PCA is NumPy on the host, in float64 (the labeled pool's
``[m, D]`` features, at most a few thousand per class); the candidates' errors
are computed on the device, in float32 with ``lax.Precision.HIGHEST`` (full
float32 products, never TF32 or bf16 passes), so the candidates' ``[n, D]``
features never cross to the host: only the ``[n]`` errors come back.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


@dataclasses.dataclass(frozen=True)
class ClassSubspaces:
  """The per-class PCA transforms ``T_k`` of DFM.

  Attributes:
    means: float64 ``[K, D]``, each class's mean feature (0 for an absent class).
    components: float64 ``[K, D, c]``, each class's top principal directions
      as orthonormal columns, zero columns beyond the class's rank.
    present: bool ``[K]``, whether the class has a labeled example.
  """
  means: np.ndarray
  components: np.ndarray
  present: np.ndarray


def fit_class_subspaces(features: np.ndarray, labels: np.ndarray, num_classes: int,
                        num_components: int) -> ClassSubspaces:
  """Fits one PCA per class to the labeled features (Krishnan et al. 2021, Sec. 3.2).

  Args:
    features: float ``[m, D]``, the labeled examples' features.
    labels: int ``[m]`` in ``[0, num_classes)``.
    num_classes: ``K``.
    num_components: ``c >= 1``, principal directions kept per class (capped
      at each class's rank).

  Returns:
    `ClassSubspaces`.

  Raises:
    ValueError: mismatched shapes, a label out of range, ``num_components <
      1`` or a non-finite feature.
  """
  features = np.asarray(features, np.float64)
  labels = np.asarray(labels)
  if features.ndim != 2 or labels.shape != features.shape[:1]:
    raise ValueError(f'features {features.shape} and labels {labels.shape} must be [m, D], [m]')
  if labels.size and not 0 <= labels.min() <= labels.max() < num_classes:
    raise ValueError(f'labels must be in [0, {num_classes})')
  if num_components < 1:
    raise ValueError(f'num_components={num_components} must be at least 1')
  if not np.isfinite(features).all():
    raise ValueError('a feature is NaN or infinite')
  dim = features.shape[1]
  means = np.zeros((num_classes, dim))
  components = np.zeros((num_classes, dim, num_components))
  present = np.zeros(num_classes, bool)
  for k in range(num_classes):
    members = features[labels == k]
    if not members.shape[0]:
      continue
    present[k] = True
    means[k] = members.mean(axis=0)
    _, singular, directions = np.linalg.svd(members - means[k], full_matrices=False)
    # Directions with (numerically) zero variance are arbitrary: not kept.
    tolerance = singular[0] * max(members.shape) * np.finfo(np.float64).eps if singular.size \
        else 0.0
    rank = int(np.sum(singular > tolerance))
    keep = min(num_components, rank)
    components[k, :, :keep] = directions[:keep].T
  return ClassSubspaces(means, components, present)


def reconstruction_errors(features: ArrayLike, predictions: ArrayLike,
                          subspaces: ClassSubspaces) -> np.ndarray:
  """Eq. 3 of Krishnan et al. (2021): ``||z - T_k^+ T_k z||_2`` through the predicted class ``k``.

  On the device, in float32: two products with all classes' components side
  by side (``[n, D] x [D, K c]``, then the predicted class's coefficients
  back), so the cost is ``O(n D K c)`` whatever the classes' sizes, and the
  residual is formed explicitly (not as ``|z|^2 - |coefficients|^2``, which
  cancels for candidates near their subspace). Device arrays stay on the
  device; one compilation per shape.

  Args:
    features: float ``[n, D]``, the candidates' features (NumPy or device).
    predictions: int ``[n]``, their predicted classes.
    subspaces: from `fit_class_subspaces`.

  Returns:
    float32 ``[n]``, ``>= 0``; ``+inf`` where the predicted class has no
    labeled example.

  Raises:
    ValueError: mismatched shapes, a prediction out of range or a
      non-finite feature.
  """
  num_classes, dim, _ = subspaces.components.shape
  if (len(features.shape) != 2 or features.shape[1] != dim
      or predictions.shape != features.shape[:1]):
    raise ValueError(f'features {features.shape} and predictions {predictions.shape} must be '
                     f'[n, {dim}] and [n]')
  if features.shape[0] == 0:
    return np.zeros(0, np.float32)
  low, high, finite = _check(features, predictions)
  if not 0 <= int(low) <= int(high) < num_classes:
    raise ValueError(f'predictions must be in [0, {num_classes})')
  if not bool(finite):
    raise ValueError('a feature is NaN or infinite')
  return np.asarray(_errors(features, predictions,
                            subspaces.means.astype(np.float32),
                            subspaces.components.astype(np.float32), subspaces.present))


@jax.jit
def _check(features, predictions):
  return jnp.min(predictions), jnp.max(predictions), jnp.all(jnp.isfinite(features))


@jax.jit
def _errors(features, predictions, means, components, present):
  """float32 ``[n]``: the residual norms through each candidate's predicted class."""
  highest = jax.lax.Precision.HIGHEST
  num_classes, dim, c = components.shape
  z = features.astype(jnp.float32)
  predictions = predictions.astype(jnp.int32)
  bases = jnp.transpose(components, (1, 0, 2)).reshape(dim, num_classes * c)  # [D, K c]
  centred = z - means[predictions]
  coefficients = jnp.dot(centred, bases, precision=highest).reshape(-1, num_classes, c)
  own = jax.nn.one_hot(predictions, num_classes, dtype=jnp.float32)[:, :, None]
  projection = jnp.dot((coefficients * own).reshape(-1, num_classes * c), bases.T,
                       precision=highest)
  errors = jnp.linalg.norm(centred - projection, axis=1)
  return jnp.where(present[predictions], errors, jnp.inf)
