"""jal's training and inference steps in PyTorch: augmentation, losses, `Trainer`, `predict`.

Every piece does the same work as its jal counterpart:

* `gather_augment`: the in-step gather, pad-and-crop, flip and normalisation
  of `jal.data.augment`, vectorised over the batch on the images' device.
* `ce_loss`, `scoring_loss`, `pretext_loss`:
  `jal.objectives.classification.cross_entropy_loss` and PAL's two losses
  (`jal.objectives.pretext`), with jal's optional mask (`masked_mean`).
* `Trainer`: one SGD step (`make_optimizer` equals `jal.train.optim`'s sgd
  chain) and `fit`, with jal's batching (`jal.train.Trainer`: shuffled, the
  last batch filled up with masked examples).
* `predict`: eval-mode passes in fixed-size batches, as
  `jal.train.inference.map_batches`.

The random draws of augmentation and shuffling differ from jal's.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# -- preprocessing -----------------------------------------------------------------


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
  """uint8 NHWC to float32 NCHW ``(x / 255 - mean) / std``, as `jal.data.augment.normalize`."""
  x = (images_u8.to(torch.float32) / 255.0 - mean) / std
  return x.permute(0, 3, 1, 2).contiguous()


def draw_augmentation(batch: int, crop_pad: int, flip: bool, device: torch.device,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
  """Per-example crop offsets ``[B, 2]`` in ``[0, 2 * crop_pad]`` and flip flags ``[B]``."""
  offsets = torch.randint(0, 2 * crop_pad + 1, (batch, 2), device=device, generator=generator)
  if flip:
    flips = torch.rand(batch, device=device, generator=generator) < 0.5
  else:
    flips = torch.zeros(batch, dtype=torch.bool, device=device)
  return offsets, flips


def crop_flip_normalize(images_u8: torch.Tensor, idx: torch.Tensor, offsets: torch.Tensor,
                        flips: torch.Tensor, crop_pad: int, mean: torch.Tensor,
                        std: torch.Tensor) -> torch.Tensor:
  """Gathers, crops, flips and normalises a batch with one indexing op.

  Equal to zero-padding each image by ``crop_pad``, cropping back at
  ``offsets`` and then flipping left-right where ``flips`` (`jal.data.augment`):
  output pixel ``(i, j)`` reads source row ``offset_0 + i - crop_pad`` and
  column ``offset_1 + j - crop_pad`` (``W - 1 - j`` for ``j`` when flipped),
  and is 0 where that falls in the padding.
  """
  _, h, w, _ = images_u8.shape
  rows = offsets[:, :1] + torch.arange(h, device=idx.device) - crop_pad  # [B, H]
  j = torch.arange(w, device=idx.device)
  cols = offsets[:, 1:] + torch.where(flips[:, None], w - 1 - j, j) - crop_pad  # [B, W]
  inside = (((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :])
  pixels = images_u8[idx[:, None, None], rows.clamp(0, h - 1)[:, :, None],
                     cols.clamp(0, w - 1)[:, None, :]]  # [B, H, W, C]
  pixels = torch.where(inside[..., None], pixels, torch.zeros_like(pixels))
  return normalize(pixels, mean, std)


def gather_augment(images_u8: torch.Tensor, idx: torch.Tensor, crop_pad: int, flip: bool,
                   mean: torch.Tensor, std: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
  """jal's training input: gather by ``idx``, random pad-and-crop and flip, normalise.

  Args:
    images_u8: the dataset, uint8 NHWC ``[N, H, W, C]`` on the device.
    idx: int64 ``[B]`` on the same device.
    crop_pad: padding of the random crop (0: no crop).
    flip: flip each example left-right with probability 1/2.
    mean, std: float32 ``[C]`` on the device, in [0, 1] units.
    generator: for the random draws (on the device), or None.

  Returns:
    float32 NCHW ``[B, C, H, W]``.
  """
  offsets, flips = draw_augmentation(idx.shape[0], crop_pad, flip, idx.device, generator)
  return crop_flip_normalize(images_u8, idx, offsets, flips, crop_pad, mean, std)


def rotation_batch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
  """The four rotations of NCHW ``x`` as one batch ``[4B]`` and their labels.

  Copy ``k`` is rotated by ``90 k`` degrees counter-clockwise, as
  `jal.data.augment.rotations` (``rot90`` from the H axis towards the W axis).
  """
  rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
  labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
  return rotated, labels


# -- losses ------------------------------------------------------------------------


def masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
  """The mean of ``values`` over the rows where ``mask`` is 1 (all rows for None), as
  `jal.objectives.masked_mean`."""
  if mask is None:
    return values.mean()
  return (values * mask).sum() / mask.sum().clamp_min(1.0)


def ce_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
  """Cross-entropy of the classifier head (`jal.objectives.classification.cross_entropy_loss`)."""
  logits, _ = model(x)
  return masked_mean(F.cross_entropy(logits, y.long(), reduction='none'), mask)


def _rotation_loss(rotation_logits, rotation_labels, mask):
  per_example = F.cross_entropy(rotation_logits, rotation_labels, reduction='none')
  return masked_mean(per_example, None if mask is None else mask.repeat(4))


def scoring_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
  """PAL's scoring-network loss (`jal.objectives.pretext.scoring_loss`).

  One forward of the ``4B`` rotated batch: rotation cross-entropy over all of
  it plus the classifier's cross-entropy on the unrotated first quarter.
  """
  rotated, rotation_labels = rotation_batch(x)
  class_logits, rotation_logits = model(rotated)
  classification = masked_mean(
      F.cross_entropy(class_logits[:x.shape[0]], y.long(), reduction='none'), mask)
  return classification + _rotation_loss(rotation_logits, rotation_labels, mask)


def pretext_loss(model: nn.Module, x: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
  """Rotation cross-entropy on the ``4B`` batch (`jal.objectives.pretext.pretext_loss`)."""
  rotated, rotation_labels = rotation_batch(x)
  _, rotation_logits = model(rotated)
  return _rotation_loss(rotation_logits, rotation_labels, mask)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    'ce': ce_loss,
    'scoring': scoring_loss,
    'pretext': lambda model, x, y, mask: pretext_loss(model, x, mask),
}

# -- training ----------------------------------------------------------------------


def make_optimizer(model: nn.Module, learning_rate: float, momentum: float = 0.9,
                   weight_decay: float = 5e-4,
                   trainable: Callable[[str], bool] | None = None) -> torch.optim.SGD:
  """SGD with momentum and coupled weight decay: jal's ``add_decayed_weights`` + ``sgd``.

  Args:
    model: the network.
    learning_rate, momentum, weight_decay: as in jal's train configs.
    trainable: optional predicate on parameter names (e.g. ``'classifier.weight'``);
      the others get no update at all, weight decay included (jal's ``trainable``).
  """
  params = [p for name, p in model.named_parameters() if trainable is None or trainable(name)]
  return torch.optim.SGD(params, lr=learning_rate, momentum=momentum, weight_decay=weight_decay)


def epoch_batches(indices: np.ndarray, batch_size: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """One epoch's shuffled ``[steps, B]`` indices and mask, the last batch filled up (jal's)."""
  n = indices.shape[0]
  steps = max(1, math.ceil(n / batch_size))
  order = rng.permutation(indices)
  fill = steps * batch_size - n
  if fill:
    order = np.concatenate([order, rng.choice(indices, fill, replace=fill > n)])
  mask = np.concatenate([np.ones(n, np.float32), np.zeros(fill, np.float32)])
  return order.astype(np.int64).reshape(steps, batch_size), mask.reshape(steps, batch_size)


class Trainer:
  """A model, its SGD optimiser and loss, and one train step.

  ``compile=True`` compiles the step function, not the model: gather,
  augmentation, normalisation, forward and loss are one ``torch.compile``d
  function with static shapes (AOTAutograd compiles its backward too), like
  jal's step. The random draws stay eager (a generator would break the graph),
  as do ``loss.backward()`` and the foreach ``optimizer.step``. Compiling the
  model alone, or this plus the optimizer step, was no faster on a CPU
  (``experiments/README.md``); this one compiles once per loss and shape and
  is reused by later Trainers. ``compile_optimizer=True`` adds a compiled
  ``optimizer.step`` (may pay off on a GPU; it compiles twice per optimizer
  object, which counts towards dynamo's recompile limit of 8).

  Batches: `fit` uses jal's scheme, every batch of size ``batch_size`` with
  the last one filled up with random examples of ``indices`` that get mask 0
  (no loss, but batch norm sees them), so shapes never change and a compiled
  step is never recompiled for a smaller batch.
  """

  def __init__(self, model: nn.Module, loss: str, learning_rate: float, crop_pad: int,
               flip: bool, mean, std, compile: bool, *,
               trainable: Callable[[str], bool] | None = None, compile_optimizer: bool = False):
    """See the class docstring; ``loss`` is ``'ce'``, ``'scoring'`` or ``'pretext'``,
    ``mean``/``std`` are ``[C]`` (NumPy or torch), ``trainable`` as in `make_optimizer`."""
    if loss not in LOSSES:
      raise ValueError(f'unknown loss {loss!r}; known: {sorted(LOSSES)}')
    self.model = model
    self.loss_fn = LOSSES[loss]
    self.crop_pad = crop_pad
    self.flip = flip
    self.mean = torch.as_tensor(mean, dtype=torch.float32)
    self.std = torch.as_tensor(std, dtype=torch.float32)
    self.optimizer = make_optimizer(model, learning_rate, trainable=trainable)
    self.generator: torch.Generator | None = None
    self._forward_loss = self._forward_loss_impl
    self._optimizer_step = self.optimizer.step
    if compile:
      self._forward_loss = torch.compile(self._forward_loss_impl, dynamic=False)
    if compile and compile_optimizer:
      self._optimizer_step = torch.compile(self.optimizer.step, dynamic=False)

  def _forward_loss_impl(self, images_u8, labels, idx, mask, offsets, flips):
    x = crop_flip_normalize(images_u8, idx, offsets, flips, self.crop_pad, self.mean, self.std)
    return self.loss_fn(self.model, x, labels[idx], mask)

  def _to_device(self, device: torch.device) -> None:
    if self.mean.device != device:
      self.mean, self.std = self.mean.to(device), self.std.to(device)
    if self.generator is None or self.generator.device != device:
      self.generator = torch.Generator(device=device)
      self.generator.manual_seed(0)

  def train_step(self, images_u8: torch.Tensor, labels: torch.Tensor, idx: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
    """One SGD step on ``images_u8[idx]`` (uint8 NHWC on the device); returns the loss (no sync)."""
    self._to_device(images_u8.device)
    self.model.train()
    offsets, flips = draw_augmentation(idx.shape[0], self.crop_pad, self.flip, idx.device,
                                       self.generator)
    loss = self._forward_loss(images_u8, labels, idx, mask, offsets, flips)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self._optimizer_step()
    return loss.detach()

  def fit(self, images_u8: torch.Tensor, labels: torch.Tensor, indices: np.ndarray, epochs: int,
          batch_size: int, seed: int) -> float:
    """Trains for ``epochs`` shuffled passes over ``indices``; returns the last step's loss.

    ``labels`` is an int64 tensor ``[N]`` on the device (unused by ``'pretext'``).
    The host syncs once, at the end.
    """
    device = images_u8.device
    self._to_device(device)
    self.generator.manual_seed(seed)
    rng = np.random.default_rng(seed)
    loss = torch.tensor(float('nan'))
    for _ in range(epochs):
      idx, mask = epoch_batches(np.asarray(indices), batch_size, rng)
      idx, mask = torch.from_numpy(idx).to(device), torch.from_numpy(mask).to(device)
      for step in range(idx.shape[0]):
        loss = self.train_step(images_u8, labels, idx[step], mask[step])
    return float(loss)


# -- inference ---------------------------------------------------------------------


def padded_batches(indices: np.ndarray, batch_size: int, device: torch.device):
  """Yields ``(idx [batch_size] on device, num_valid)``, the last padded with 0 (jal's)."""
  indices = np.asarray(indices, np.int64)
  all_idx = torch.from_numpy(indices).to(device)
  for start in range(0, indices.shape[0], batch_size):
    batch = all_idx[start:start + batch_size]
    valid = batch.shape[0]
    if valid < batch_size:
      batch = torch.cat([batch, batch.new_zeros(batch_size - valid)])
    yield batch, valid


def as_device(values, device: torch.device) -> torch.Tensor:
  return torch.as_tensor(values, dtype=torch.float32).to(device)


@torch.inference_mode()
def predict(model: nn.Module, images_u8: torch.Tensor, indices: np.ndarray, batch_size: int,
            mean, std) -> np.ndarray:
  """Classifier logits ``[n, num_classes]`` (float32 NumPy) in eval mode, in fixed batches."""
  device = images_u8.device
  mean, std = as_device(mean, device), as_device(std, device)
  model.eval()
  outputs = []
  for idx, valid in padded_batches(indices, batch_size, device):
    logits, _ = model(normalize(images_u8[idx], mean, std))
    outputs.append(logits[:valid])
  return torch.cat(outputs).float().cpu().numpy()
