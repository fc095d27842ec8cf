"""PAL's scores and one PAL round in PyTorch, as `jal.strategies.pal` does them.

* `score_batch`, `pal_scores`: ``(S_S, S_C)`` of the four rotations of each
  image in one forward, in fixed-size eval-mode batches
  (`jal.strategies.pal.score_batch`).
* `pal_round`: the task-model fit, then `jal.strategies.pal.Strategy.query`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from .networks import build_network, compiled
from .training import Trainer, as_device, normalize, padded_batches, rotation_batch


def score_batch(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
  """PAL's ``(S_S, S_C)`` of a normalised NCHW batch ``[B]``, its four rotations in one forward.

  ``S_S = -sum_k p(rotation k | x rotated by k)``
  (`jal.acquisition.pretext.self_supervision_score`), ``S_C = log C + mean_c
  log_softmax(classifier logits)`` of the unrotated copy (`classification_score`).
  """
  b = x.shape[0]
  rotated, _ = rotation_batch(x)
  class_logits, rotation_logits = model(rotated)
  probs = torch.softmax(rotation_logits.float().view(4, b, 4), dim=-1)
  k = torch.arange(4, device=x.device)
  s_s = -probs[k, :, k].sum(dim=0)
  log_h = torch.log_softmax(class_logits[:b].float(), dim=-1)
  s_c = math.log(log_h.shape[-1]) + log_h.mean(dim=-1)
  return s_s, s_c


@torch.inference_mode()
def pal_scores(model: nn.Module, images_u8: torch.Tensor, indices: np.ndarray, batch_size: int,
               mean, std) -> tuple[np.ndarray, np.ndarray]:
  """``(S_S, S_C)``, float32 NumPy ``[n]`` each, as `jal.strategies.pal.score_batch` in batches."""
  device = images_u8.device
  mean, std = as_device(mean, device), as_device(std, device)
  model.eval()
  s_s, s_c = [], []
  for idx, valid in padded_batches(indices, batch_size, device):
    batch_s_s, batch_s_c = score_batch(model, normalize(images_u8[idx], mean, std))
    s_s.append(batch_s_s[:valid])
    s_c.append(batch_s_c[:valid])
  return torch.cat(s_s).cpu().numpy(), torch.cat(s_c).cpu().numpy()


# -- one PAL round -----------------------------------------------------------------


def subquery_sizes(budget: int, num_subqueries: int) -> list[int]:
  """``budget`` in ``K`` sizes that differ by at most one, larger first (jal's)."""
  k = max(1, min(num_subqueries, budget))
  return [budget // k + (1 if i < budget % k else 0) for i in range(k)]


def _top_positions(scores: np.ndarray, k: int) -> np.ndarray:
  """Positions of the ``k`` highest scores, ties to the first (`jal.selection.top_k`)."""
  return np.argsort(-scores, kind='stable')[:k]


def pal_round(images_u8: torch.Tensor, labels: torch.Tensor, labeled: np.ndarray,
              unlabeled: np.ndarray, budget: int, *, task_network: str, scoring_network: str,
              width_task: int | None, width_scoring: int | None, num_classes: int,
              epochs_task: int, epochs_scoring: int, epochs_finetune: int, num_subqueries: int,
              batch_size: int, eval_batch_size: int, learning_rate: float,
              finetune_learning_rate: float, crop_pad: int, flip: bool, mean, std,
              compile: bool, seed: int) -> np.ndarray:
  """One PAL round: the task-model fit, then `jal.strategies.pal.Strategy.query`.

  (a) A fresh task model is fitted with cross-entropy on ``labeled``; (b) a
  fresh scoring network with `scoring_loss`; (c) the pool gets
  ``S = S_S + S_C``; (d) ``K`` sub-queries: the first takes the top ``S``;
  before each later one a copy ``g'`` of the scoring network (everything but
  the classifier head, one optimiser carried across sub-queries, as jal) is
  fine-tuned with `pretext_loss` on everything chosen so far and the next
  takes the top ``S_S + S_C + S_D`` (``S_D``: the ``S_S`` of ``g'``) among
  the rest. ``lambda1 = lambda2 = 1``.

  Returns:
    int64 pool indices (rows of ``images_u8``), ``min(budget, len(unlabeled))``.
  """
  device = images_u8.device
  in_channels = images_u8.shape[-1]
  common = dict(crop_pad=crop_pad, flip=flip, mean=mean, std=std, compile=compile)
  infer = compiled if compile else (lambda model: model)

  task = build_network(task_network, width_task, num_classes, in_channels).to(device)
  Trainer(task, 'ce', learning_rate, **common).fit(
      images_u8, labels, labeled, epochs_task, batch_size, seed)

  scorer = build_network(scoring_network, width_scoring, num_classes, in_channels).to(device)
  Trainer(scorer, 'scoring', learning_rate, **common).fit(
      images_u8, labels, labeled, epochs_scoring, batch_size, seed + 1)
  s_s, s_c = pal_scores(infer(scorer), images_u8, unlabeled, eval_batch_size, mean, std)

  finetuned = copy.deepcopy(scorer)
  finetuner = Trainer(finetuned, 'pretext', finetune_learning_rate,
                      trainable=lambda name: not name.startswith('classifier.'), **common)
  finetuned_infer = infer(finetuned)
  unlabeled = np.asarray(unlabeled, np.int64)
  available = np.ones(unlabeled.size, bool)
  chosen: list[np.ndarray] = []
  score = s_s + s_c
  for k, size in enumerate(subquery_sizes(min(budget, unlabeled.size), num_subqueries)):
    if k > 0:
      finetuner.fit(images_u8, labels, np.concatenate(chosen), epochs_finetune, batch_size,
                    seed + 1 + k)
      s_d, _ = pal_scores(finetuned_infer, images_u8, unlabeled, eval_batch_size, mean, std)
      score = s_s + s_c + s_d
    positions = _top_positions(np.where(available, score, -np.inf), size)
    available[positions] = False
    chosen.append(unlabeled[positions])
  return np.concatenate(chosen)
