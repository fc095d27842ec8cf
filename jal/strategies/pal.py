"""PAL: Pretext-based Active Learning (Bhatnagar et al. 2021).

A scoring network, separate from the task model, is trained from scratch each
round on the labeled pool only, with two heads on one backbone: a rotation
head ``g`` (pretext task: which of 0/90/180/270 degrees; Sec. 3.1) and a
classification head ``h`` (Sec. 3.2). Every unlabeled candidate is scored with
``S = S_S + lambda1 S_C`` (Eq. 3), the four rotated copies in one compiled
forward pass. The query of ``N`` is made in ``K`` sub-queries of about
``N / K`` (Sec. 3.3): after each, a copy ``g'`` of the rotation network
(backbone and rotation head: the parameters ``phi`` of Algorithm 1) is
fine-tuned with the pretext task alone on everything chosen so far (no labels
are asked for), and the next sub-query uses ``S = S_S + lambda1 S_C +
lambda2 S_D`` (Eq. 4) with ``S_D`` the ``S_S`` of ``g'``. The copy carries
over from one sub-query to the next (``phi' = phi`` once, before the loop).

Ranking: the highest S is queried (see `jal.acquisition.pretext`).

Segmentation (Sec. 3.2, Table 2): the classification head is the task's
per-pixel head on the scoring backbone, S_C is computed per pixel and
averaged per image, and the rotation pretext task is on the whole image
(square images: a 90-degree rotation must keep the shape).

What ``g'`` is, is ambiguous in the paper: Algorithm 1 updates all of ``phi``
(for a shared backbone: the backbone and the rotation head), while the
introduction says "we tune only the self-supervision head". jal defaults to
Algorithm 1 (``finetune_scope='network'``); ``finetune_scope='head'`` freezes
the backbone and its batch-norm statistics and trains only the rotation head.

"""

from __future__ import annotations

import functools

import jax
import ml_collections
import numpy as np

from jal import pool as pool_lib, selection
from jal.acquisition import pretext as pretext_scores
from jal.data import augment
from jal.errors import JalError
from jal.models import MultiHeadNet, RotationHead, get_backbone
from jal.objectives import pretext
from jal.strategies import base
from jal.train import Trainer, fit, inference
from jal.train.config import train_config

FINETUNE_SCOPES = ('network', 'head')


def default_config() -> ml_collections.ConfigDict:
  """PAL's settings (Bhatnagar et al. 2021, Table 2), and jal's where it gives none.

  Keys:
    lambda1, lambda2: the weights of S_C and S_D (1 and 1).
    num_subqueries: K (not given: 5).
    finetune_scope: what ``g'`` is, ``'network'`` (Algorithm 1) or ``'head'``.
    scoring_model: the scoring network's backbone, ``name`` (ResNet-18),
      ``width`` (None: the architecture's) and ``dtype``.
    scoring_train: how it is trained (SGD, lr 0.01).
    finetune: how ``g'`` is fine-tuned on each sub-query (lr 0.01; epochs
      not given: 5).
  """
  return ml_collections.ConfigDict(dict(
      lambda1=1.0, lambda2=1.0, num_subqueries=5, finetune_scope='network',
      scoring_model=dict(name='resnet18', dtype='float32',
                         width=ml_collections.FieldReference(None, field_type=int)),
      scoring_train=train_config(learning_rate=0.01, lr_schedule='constant'),
      finetune=train_config(learning_rate=0.01, epochs=5, lr_schedule='constant')))


def score_batch(model, mean, std, per_image, variables, images, idx):
  """``(S_S, S_C)`` of a batch, its four rotations scored in one forward pass.

  The rotations ``[4, B, ...]`` are folded into one batch of ``4B`` for the
  network (eval-mode batch norm is per example, so this equals a ``jax.vmap``
  over the rotation axis, and XLA batches it better: ``BENCHMARKS.md``) and
  unfolded after it.

  Args:
    model: the scoring network (``'rotation'`` and ``'classifier'`` heads).
    mean, std: normalisation, float32 ``[C]``.
    per_image: the task's reduction of per-pixel scores (`jal.task.Task.per_image`):
      segmentation's S_C is computed per pixel and averaged (Sec. 3.2).
    variables: the network's variables.
    images: uint8 ``[N, H, W, C]`` on the device.
    idx: int32 ``[B]``.

  Returns:
    Two float32 arrays with shape ``[B]``. With the variables of ``g'`` the
    first is ``S_D``.
  """
  b = idx.shape[0]
  x, _ = pretext.rotation_batch(augment.normalize(images[idx], mean, std))
  outputs = model.apply(variables, x, train=False)
  rotation_logits = outputs['rotation'].reshape(4, b, 4)
  return (pretext_scores.self_supervision_score(rotation_logits),
          per_image(pretext_scores.classification_score(outputs['classifier'][:b])))


def subquery_sizes(budget: int, num_subqueries: int) -> list[int]:
  """Splits ``budget`` into ``K`` sizes that differ by at most one, larger first
  (at most ``budget`` of them, at least one)."""
  return selection.even_split(budget, max(1, min(num_subqueries, budget)))


class Strategy(base.Strategy):
  """PAL; see the module docstring."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    cfg = self.settings
    self._check_subqueries(cfg.num_subqueries)
    spec = self.data.spec
    backbone = get_backbone(cfg.scoring_model.name, width=cfg.scoring_model.get('width'),
                            dtype=cfg.scoring_model.get('dtype', 'float32'))
    if self.task.kind == 'segmentation' and spec.shape[0] != spec.shape[1]:
      raise JalError(f'pal: the rotation pretext task needs square images, these are '
                     f'{spec.shape[0]}x{spec.shape[1]}; set config.dataset.image_size to a square '
                     '(MAL resizes BDD100K to 224x224 the same way)')
    self.model = MultiHeadNet(backbone, {'classifier': self.task.head(cfg.scoring_model.name),
                                         'rotation': RotationHead()})
    self.scorer = Trainer(self.model, pretext.scoring_loss, cfg.scoring_train, spec, self.mesh)
    scope = cfg.finetune_scope
    self.check_choice('finetune_scope', FINETUNE_SCOPES)
    if scope == 'network':
      # g' is the rotation network: the backbone and the rotation head.
      self.finetuner = Trainer(self.model, pretext.pretext_loss, cfg.finetune, spec, self.mesh,
                               trainable=lambda name: name != 'heads_classifier')
    else:  # 'head': the rotation head only
      self.finetuner = Trainer(self.model, pretext.pretext_loss_frozen_backbone, cfg.finetune,
                               spec, self.mesh, trainable=lambda name: name == 'heads_rotation')
    self.score_batch = jax.jit(functools.partial(score_batch, self.model, spec.mean, spec.std,
                                                 self.task.per_image))
    self.score_batch_size = self.config.eval_batch_size

  def _check_subqueries(self, k) -> None:
    """Refuses K sub-queries that do not split the budget: fewer than 1, or more than it."""
    budget = pool_lib.resolve_count(self.config.budget, self.data.num_train, 'config.budget')
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= budget:
      raise JalError(f'config.strategy.pal.num_subqueries={k!r} must be an integer from 1 to '
                     f'the budget of {budget}: the query of {budget} is split into K '
                     'sub-queries of at least one example each')

  def _scores(self, variables, ctx) -> tuple[np.ndarray, np.ndarray]:
    return inference.map_batches(self.score_batch, (variables, ctx.images), ctx.candidates,
                                 self.score_batch_size, self.scorer.batch_sharding)

  def query(self, ctx: base.RoundContext, budget: int) -> np.ndarray:
    cfg = self.settings
    state = self.scorer.init(ctx.key('pal_scoring_init'))
    state, _ = fit(self.scorer, state, ctx.images, ctx.labels, ctx.pool.labeled,
                   epochs=cfg.scoring_train.epochs, key=ctx.key('pal_scoring_train'),
                   description=f'round {ctx.round} PAL scoring network')
    s_s, s_c = self._scores(state.variables, ctx)
    novelty = np.asarray(pretext_scores.hybrid_score(s_s, s_c, cfg.lambda1))

    # Sub-queries (Sec. 3.3): g' starts as a copy of the rotation network and
    # is fine-tuned on everything chosen so far before each later sub-query.
    finetuned = self.finetuner.from_variables(state.variables)
    available = np.ones(ctx.candidates.size, bool)
    chosen: list[np.ndarray] = []
    score = novelty
    sizes = subquery_sizes(min(budget, ctx.candidates.size), cfg.num_subqueries)
    for k, size in enumerate(sizes):
      if k > 0:
        query_so_far = np.concatenate(chosen)
        finetuned, _ = fit(
            self.finetuner, finetuned, ctx.images, ctx.labels, query_so_far,
            epochs=cfg.finetune.epochs, key=ctx.key('pal_finetune', k),
            description=f'round {ctx.round} PAL sub-query {k + 1}/{len(sizes)} fine-tune')
        s_d, _ = self._scores(finetuned.variables, ctx)
        score = np.asarray(pretext_scores.hybrid_score(s_s, s_c, cfg.lambda1, s_d, cfg.lambda2))
      positions = selection.top_k(np.where(available, score, -np.inf),
                                  np.arange(ctx.candidates.size), size)
      available[positions] = False
      chosen.append(ctx.candidates[positions])
    return np.concatenate(chosen)
