"""The rotation pretext task (Gidaris et al., ICLR 2018) as training objectives.

A network learns to tell by how much an image was rotated (0, 90, 180 or 270
degrees: class ``k`` is ``90 k``), every rotation of each batch image in one
batch of ``4B``. PAL's scoring network (Bhatnagar et al. 2021) learns it
together with classification; PAL's fine-tuned ``g'`` and the initial pools'
rotation network (Chandra et al. 2021) learn it alone, labels unused.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jal.data import augment
from jal.objectives.base import Batch, masked_mean
from jal.objectives.classification import task_cross_entropy


def rotation_batch(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """All four rotations of a batch as one batch ``[4B, ...]`` and their labels ``[4B]``."""
  rotated = augment.rotations(images)
  b = images.shape[0]
  return rotated.reshape(4 * b, *images.shape[1:]), jnp.repeat(jnp.arange(4), b)


def rotation_loss(outputs, rotation_labels, mask):
  """The rotation head's cross-entropy over a `rotation_batch`, real examples only."""
  ce = optax.softmax_cross_entropy_with_integer_labels(outputs['rotation'], rotation_labels)
  return masked_mean(ce, jnp.tile(mask, 4))


def scoring_loss(apply_fn, variables, batch: Batch, key, progress):
  """PAL's scoring-network objective (Bhatnagar et al. 2021, Algorithm 1, training part).

  Cross-entropy of the classification head on the labeled images plus the
  rotation head's cross-entropy on their four rotations; the five forward
  passes of Algorithm 1 run as one batch of ``4B`` (the unrotated copy is the
  first quarter and feeds the classification head).
  """
  del key, progress
  b = batch.images.shape[0]
  x, rotation_labels = rotation_batch(batch.images)
  outputs, new_state = apply_fn(variables, x, train=True, mutable=['batch_stats'])
  rotation = rotation_loss(outputs, rotation_labels, batch.mask)
  classification = task_cross_entropy(outputs['classifier'][:b], batch.labels, batch.mask)
  loss = classification + rotation
  return loss, (new_state['batch_stats'],
                {'loss': loss, 'rotation_loss': rotation, 'classification_loss': classification})


def pretext_loss(apply_fn, variables, batch: Batch, key, progress):
  """Rotation cross-entropy alone, labels unused (a `LossFn`).

  How PAL fine-tunes ``g'`` on a sub-query, and how the rotation network of
  the initial pools (Chandra et al. 2021) learns on the whole pool.
  """
  del key, progress
  x, rotation_labels = rotation_batch(batch.images)
  outputs, new_state = apply_fn(variables, x, train=True, mutable=['batch_stats'])
  loss = rotation_loss(outputs, rotation_labels, batch.mask)
  return loss, (new_state['batch_stats'], {'loss': loss})


def pretext_loss_frozen_backbone(apply_fn, variables, batch: Batch, key, progress):
  """`pretext_loss` with the backbone in inference mode (PAL's ``finetune_scope='head'``)."""
  del key, progress
  x, rotation_labels = rotation_batch(batch.images)
  outputs = apply_fn(variables, x, train=False)
  loss = rotation_loss(outputs, rotation_labels, batch.mask)
  return loss, (variables['batch_stats'], {'loss': loss})
