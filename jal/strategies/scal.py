"""SCAL, supervised contrastive active learning (Krishnan et al. 2021, Sec. 3.1).

The task model is trained as Khosla et al. (2020) train a supervised
contrastive model, which the paper follows for "the projection head and
classifier" (App. A.3), in two stages each round:

1. The backbone and a projection head (`jal.models.ProjectionHead`: Dense ->
   ReLU -> Dense(128), L2-normalised) learn with the supervised contrastive
   loss (Eq. 1, ``temperature`` = 0.07) on two
   augmented views of every image of a batch, with ``config.train`` (the
   paper: SGD 0.1, momentum 0.9, weight decay 5e-4, 200 epochs, x0.1 at 160).
2. A linear classifier learns with cross-entropy on the frozen backbone's
   features (eval-mode batch norm, no gradient into the backbone, the same
   augmentation), with ``classifier_train``. The paper gives no
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

import functools

import jax
import ml_collections

from jal.errors import JalError
from jal.models import ProjectionHead
from jal.objectives.classification import linear_probe_loss
from jal.objectives.contrastive import contrastive_objective
from jal.strategies import base
from jal.strategies._features import feature_similarity_query
from jal.train import Trainer, fit
from jal.train.config import optimizer_config


def default_config() -> ml_collections.ConfigDict:
  """Keys: ``temperature`` (0.07), ``projection_dim`` (128), ``projection_hidden``
  (None: the feature width), ``classifier_train`` (the linear stage's optimiser
  and ``epochs``: Khosla et al.'s ``main_linear.py``)."""
  return ml_collections.ConfigDict(dict(
      temperature=0.07, projection_dim=128,
      projection_hidden=ml_collections.FieldReference(None, field_type=int),
      classifier_train=optimizer_config('sgd', 0.1, momentum=0.9, lr_schedule='multistep',
                                        lr_milestones=(8 / 14, 11 / 14, 13 / 14), lr_decay=0.2,
                                        epochs=14)))


def _only_the_classifier(name: str) -> bool:
  return name == 'heads_classifier'


class Strategy(base.Strategy):
  """Supervised contrastive training, then a linear classifier; FeatureSim's query."""

  not_for_segmentation = 'its supervised contrastive loss pairs images by their one class'

  plain_fit = False

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    if cfg.classifier_train.epochs < 1:
      raise JalError(f'scal: config.strategy.scal.classifier_train.epochs='
                     f'{cfg.classifier_train.epochs} must be at least 1')
    # The linear stage: the task model with only the classifier trained, with
    # config.train's batch size and augmentation and classifier_train's
    # optimiser, schedule and epochs.
    train_config = ml_collections.ConfigDict(self.config.train.to_dict())
    train_config.update(cfg.classifier_train.to_dict())
    self.classifier_trainer = Trainer(self.trainer.model, linear_probe_loss, train_config,
                                      self.data.spec, self.mesh, trainable=_only_the_classifier)

  def task_spec(self) -> base.TaskSpec:
    cfg = self.settings
    if not cfg.temperature > 0 or cfg.projection_dim < 1:
      raise JalError(f'scal: config.strategy.scal.temperature={cfg.temperature} must be '
                     f'positive and projection_dim={cfg.projection_dim} at least 1')
    model = self.task_model(projection=ProjectionHead(cfg.projection_dim,
                                                      cfg.get('projection_hidden')))
    loss = functools.partial(contrastive_objective, temperature=cfg.temperature)
    return base.TaskSpec(model, loss, views=2)

  def fit(self, state, images, labels, pool, *, key, description) -> base.Fit:
    """Stage 1 (contrastive, ``config.train.epochs``), then stage 2 (the linear classifier).

    Returns:
      The state after stage 2 and the metrics of both stages' last epochs
      (stage 2's prefixed ``classifier_``).
    """
    contrastive_key, classifier_key = jax.random.split(key)
    state, metrics = fit(self.trainer, state, images, labels, pool.labeled,
                         epochs=self.config.train.epochs, key=contrastive_key,
                         description=f'{description}, contrastive')
    classifier = self.classifier_trainer
    state, classifier_metrics = fit(
        classifier, classifier.from_variables(state.variables), images, labels, pool.labeled,
        epochs=classifier.train_config.epochs, key=classifier_key,
        description=f'{description}, linear classifier')
    return base.Fit(state, {**metrics, **{f'classifier_{k}': v
                                          for k, v in classifier_metrics.items()}})

  def query(self, ctx: base.RoundContext, budget: int):
    return feature_similarity_query(ctx, budget, self.task.num_classes)
