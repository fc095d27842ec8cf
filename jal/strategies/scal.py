"""SCAL, supervised contrastive active learning (Krishnan et al., paper 002, Sec. 3.1).

The task model is trained as Khosla et al. (2020) train a supervised
contrastive model, which the paper follows for "the projection head and
classifier" (App. A.3), in two stages each round:

1. The backbone and a projection head (`jal.models.ProjectionHead`: Dense ->
   ReLU -> Dense(128), L2-normalised) learn with the supervised contrastive
   loss (Eq. 1, temperature ``contrastive_temperature`` = 0.07) on two
   augmented views of every image of a batch, with ``config.train`` (the
   paper: SGD 0.1, momentum 0.9, weight decay 5e-4, 200 epochs, x0.1 at 160).
2. A linear classifier learns with cross-entropy on the frozen backbone's
   features (eval-mode batch norm, no gradient into the backbone, the same
   augmentation), with ``scal_classifier_train``. The paper gives no
   settings for this stage; the defaults are those of Khosla et al.'s
   reference ``main_linear.py``: SGD 0.1, momentum 0.9, no weight decay, 14
   epochs, x0.2 at epochs 8, 11 and 13.

The query is FeatureSim's (`jal.strategies.featuresim`): Eq. 2 on the
backbone's features (before the projection head and the classifier), with
the classifier's predicted class, and the ``budget / K`` lowest scores per
predicted class. The views are the task model's standard augmentation
(random crop with ``crop_pad`` and, where the dataset allows, flips): the
paper does not list SimCLR's colour distortions, and jal does not add them.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jal import losses, training
from jal.errors import JalError
from jal.models import ClassifierHead, ProjectionHead
from jal.pool import Pool
from jal.strategies import featuresim


def contrastive_objective(apply_fn, variables, images, labels, mask, key, progress, *,
                          temperature: float):
  """The supervised contrastive loss of the projection head's output (a `LossFn`).

  ``images`` holds two views of each batch image (`jal.training.Trainer` with
  ``views=2``), ``labels`` and ``mask`` repeated alike. Metrics: ``loss``.
  """
  del progress
  outputs, new_state = apply_fn(variables, images, train=True, rngs={'dropout': key},
                                mutable=['batch_stats'])
  loss = losses.supervised_contrastive_loss(outputs['projection'], labels, mask, temperature)
  return loss, (new_state['batch_stats'], {'loss': loss})


def linear_classifier_objective(apply_fn, variables, images, labels, mask, key, progress):
  """Cross-entropy of a linear classifier on frozen features (a `LossFn`).

  The backbone runs in eval mode and passes no gradient (its batch-norm
  statistics come back unchanged). Metrics: ``loss``, ``accuracy``.
  """
  del key, progress
  outputs = apply_fn(variables, images, train=False,
                     head_args={'classifier': {'stop_gradient': True}})
  logits = outputs['classifier']
  loss = training.masked_mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels),
                              mask)
  accuracy = training.masked_mean((jnp.argmax(logits, -1) == labels).astype(jnp.float32), mask)
  return loss, (variables['batch_stats'], {'loss': loss, 'accuracy': accuracy})


def _only_the_classifier(name: str) -> bool:
  return name == 'heads_classifier'


class Strategy(featuresim.Strategy):
  """Trains with the supervised contrastive loss, then queries as FeatureSim.

  Config (``config.strategy``): ``contrastive_temperature`` (0.07),
  ``projection_dim`` (128), ``projection_hidden`` (None: the feature width),
  ``scal_classifier_train`` (the linear stage's optimiser and ``epochs``).
  """

  task_views = 2

  def __init__(self, config, dataset, mesh):
    super().__init__(config, dataset, mesh)
    cfg = self.strategy_config
    if not cfg.contrastive_temperature > 0 or cfg.projection_dim < 1:
      raise JalError(f'scal: config.strategy.contrastive_temperature='
                     f'{cfg.contrastive_temperature} must be positive and projection_dim='
                     f'{cfg.projection_dim} at least 1')
    if cfg.scal_classifier_train.epochs < 1:
      raise JalError(f'scal: config.strategy.scal_classifier_train.epochs='
                     f'{cfg.scal_classifier_train.epochs} must be at least 1')
    self.task_loss = functools.partial(contrastive_objective,
                                       temperature=cfg.contrastive_temperature)
    self._classifier_trainer = None

  def task_heads(self, num_classes: int) -> dict:
    cfg = self.strategy_config
    return {'classifier': ClassifierHead(num_classes),
            'projection': ProjectionHead(cfg.projection_dim, cfg.get('projection_hidden'))}

  def classifier_trainer(self, trainer: training.Trainer) -> training.Trainer:
    """The linear stage's `Trainer`: ``trainer``'s model, only the classifier trained.

    Built once per experiment (its compiled step is reused every round). Its
    config is ``trainer.train_config`` (batch size, augmentation) with
    ``scal_classifier_train``'s optimiser, schedule and epochs.
    """
    if self._classifier_trainer is None or self._classifier_trainer.model is not trainer.model:
      train_config = ml_collections.ConfigDict(trainer.train_config.to_dict())
      train_config.update(self.strategy_config.scal_classifier_train.to_dict())
      self._classifier_trainer = dataclasses.replace(
          trainer, train_config=train_config, loss_fn=linear_classifier_objective,
          trainable=_only_the_classifier, freeze_after=None, views=1)
    return self._classifier_trainer

  def fit_task_model(self, trainer: training.Trainer, state: training.TrainState,
                     images: jax.Array, labels: jax.Array, pool: Pool, *, epochs: int,
                     key: jax.Array, description: str):
    """Stage 1 (contrastive, ``epochs``), then stage 2 (the linear classifier).

    Returns:
      The state after stage 2 and the metrics of both stages' last epochs
      (stage 2's prefixed ``classifier_``).
    """
    contrastive_key, classifier_key = jax.random.split(key)
    state, metrics = training.fit(trainer, state, images, labels, pool.labeled, epochs=epochs,
                                  key=contrastive_key, description=f'{description}, contrastive')
    classifier = self.classifier_trainer(trainer)
    state, classifier_metrics = training.fit(
        classifier, classifier.from_variables(state.variables), images, labels, pool.labeled,
        epochs=classifier.train_config.epochs, key=classifier_key,
        description=f'{description}, linear classifier')
    return state, {**metrics, **{f'classifier_{k}': v for k, v in classifier_metrics.items()}}
