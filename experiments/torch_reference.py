"""A PyTorch reference for jal's networks, compiled steps and PAL round.

Used only by the benchmark that times jal against PyTorch (eager and
``torch.compile``) in the same run, so every piece here does the same work as
its jal counterpart:

* `build_network`: jal's CIFAR ResNet-18 and SmallCNN with a ``classifier``
  and a ``rotation`` head (same layers, shapes and parameter counts as jal's
  ``MultiHeadNet``; see `jal.models`).
* `gather_augment`: the in-step gather, pad-and-crop, flip and normalisation
  of `jal.augment`, vectorised over the batch on the images' device.
* `ce_loss`, `scoring_loss`, `pretext_loss`: `jal.training.cross_entropy_loss`
  and PAL's two losses (`jal.strategies.pal`), with jal's optional mask.
* `Trainer`: one SGD step (`make_optimizer` equals `jal.optim`'s sgd chain)
  and `fit`, with jal's batching (`jal.training.Trainer`: shuffled, the last batch
  filled up with masked examples).
* `predict`, `pal_scores`: eval-mode passes in fixed-size batches, as
  `jal.inference.map_batches`; `pal_round`: one PAL round, as
  `jal.strategies.pal.Strategy.query` plus the task-model fit before it.
* `load_jal_variables`: copies a jal model's variables into the torch network,
  for agreement checks.

Differences that do not change the amount of work: initialisation is
PyTorch's default (jal uses flax's LeCun-normal kernels and zero biases; use
`load_jal_variables` to compare numbers), BatchNorm's running variance is
updated with the unbiased batch variance (flax uses the biased one), and the
random draws of augmentation and shuffling differ from jal's.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTHS = {'resnet18': 64, 'small_cnn': 32}

# -- networks --------------------------------------------------------------------
# Submodules carry jal's flax names (stem_conv, stage1_block1.conv1, ...), so
# that `load_jal_variables` maps names one to one.


class BasicBlock(nn.Module):
  """Two 3x3 convs with BN and a residual connection (`jal.models.resnet.BasicBlock`)."""

  def __init__(self, in_channels: int, features: int, stride: int):
    super().__init__()
    self.conv1 = nn.Conv2d(in_channels, features, 3, stride, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(features)
    self.conv2 = nn.Conv2d(features, features, 3, 1, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(features)
    self.projection = stride != 1 or in_channels != features
    if self.projection:
      self.shortcut_conv = nn.Conv2d(in_channels, features, 1, stride, 0, bias=False)
      self.shortcut_bn = nn.BatchNorm2d(features)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = F.relu(self.bn1(self.conv1(x)))
    y = self.bn2(self.conv2(y))
    shortcut = self.shortcut_bn(self.shortcut_conv(x)) if self.projection else x
    return F.relu(y + shortcut)


class ResNet18(nn.Module):
  """CIFAR ResNet-18 backbone returning pooled features ``[B, 8w]``."""

  def __init__(self, width: int, in_channels: int):
    super().__init__()
    self.stem_conv = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
    self.stem_bn = nn.BatchNorm2d(width)
    self.block_names = []
    channels = width
    for stage, (multiplier, stride) in enumerate(((1, 1), (2, 2), (4, 2), (8, 2))):
      for index in range(2):
        name = f'stage{stage + 1}_block{index + 1}'
        self.add_module(name, BasicBlock(channels, width * multiplier, stride if index == 0 else 1))
        self.block_names.append(name)
        channels = width * multiplier
    self.features = channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    for name in self.block_names:
      x = getattr(self, name)(x)
    return x.mean(dim=(2, 3))


def max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
  """2x2 max-pool that leaves an axis of size 1 alone (`jal.models.vgg.max_pool_2x2`)."""
  window = tuple(2 if size >= 2 else 1 for size in x.shape[2:])
  return x if window == (1, 1) else F.max_pool2d(x, window, window)


class SmallCNN(nn.Module):
  """jal's SmallCNN backbone returning pooled features ``[B, 4w]``."""

  def __init__(self, width: int, in_channels: int):
    super().__init__()
    channels = in_channels
    for stage, multiplier in enumerate((1, 2, 4)):
      for index in range(2):
        self.add_module(f'stage{stage + 1}_conv{index + 1}',
                        nn.Conv2d(channels, width * multiplier, 3, 1, 1, bias=True))
        self.add_module(f'stage{stage + 1}_bn{index + 1}', nn.BatchNorm2d(width * multiplier))
        channels = width * multiplier
    self.features = channels

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    for stage in range(1, 4):
      for index in range(1, 3):
        conv = getattr(self, f'stage{stage}_conv{index}')
        x = F.relu(getattr(self, f'stage{stage}_bn{index}')(conv(x)))
      if stage < 3:
        x = max_pool_2x2(x)
    return x.mean(dim=(2, 3))


class MultiHeadNet(nn.Module):
  """A backbone with jal's two linear heads, ``classifier`` and ``rotation`` (4 classes)."""

  def __init__(self, backbone: nn.Module, num_classes: int):
    super().__init__()
    self.backbone = backbone
    self.classifier = nn.Linear(backbone.features, num_classes)
    self.rotation = nn.Linear(backbone.features, 4)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pooled = self.backbone(x)
    return self.classifier(pooled), self.rotation(pooled)


def build_network(name: str, width: int | None, num_classes: int,
                  in_channels: int = 3) -> nn.Module:
  """jal's backbone ``name`` with ``classifier`` and ``rotation`` heads.

  Args:
    name: ``'resnet18'`` or ``'small_cnn'``.
    width: channels of the first stage; None for jal's default (64 / 32).
    num_classes: outputs of the classifier head.
    in_channels: channels of the input images.

  Returns:
    A module mapping float NCHW images to ``(class_logits [B, num_classes],
    rotation_logits [B, 4])``, on the CPU (move it with ``.to(device)``).
  """
  if name not in DEFAULT_WIDTHS:
    raise ValueError(f'unknown network {name!r}; known: {sorted(DEFAULT_WIDTHS)}')
  width = DEFAULT_WIDTHS[name] if width is None else width
  backbone = (ResNet18 if name == 'resnet18' else SmallCNN)(width, in_channels)
  return MultiHeadNet(backbone, num_classes)


def compiled(model: nn.Module) -> nn.Module:
  """``torch.compile(model)``, for inference benchmarks."""
  return torch.compile(model)


def load_jal_variables(model: nn.Module, variables: Mapping[str, Any]) -> None:
  """Copies a jal ``MultiHeadNet``'s variables into a `build_network` model, in place.

  Conv kernels go from HWIO to OIHW, dense kernels are transposed, BN
  ``scale``/``bias``/``mean``/``var`` become ``weight``/``bias``/
  ``running_mean``/``running_var``. Raises ValueError on a shape mismatch or
  when a torch parameter or running statistic is left unset.
  """
  model = getattr(model, '_orig_mod', model)
  names = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
           'var': 'running_var'}
  assigned = set()

  def visit(tree, path):
    if isinstance(tree, Mapping):
      for key, value in tree.items():
        visit(value, path + (key,))
      return
    top, *middle, leaf = path
    module_path = '.'.join(['backbone', *middle] if top == 'backbone' else [top[len('heads_'):]])
    value = torch.from_numpy(np.array(tree, np.float32))
    if leaf == 'kernel':
      value = value.permute(3, 2, 0, 1) if value.ndim == 4 else value.T
    target = getattr(model.get_submodule(module_path), names[leaf])
    if target.shape != value.shape:
      raise ValueError(f'{path}: jal shape {tuple(value.shape)} != torch {tuple(target.shape)}')
    with torch.no_grad():
      target.copy_(value)
    assigned.add(f'{module_path}.{names[leaf]}')

  for collection in ('params', 'batch_stats'):
    visit(variables.get(collection, {}), ())
  expected = {name for name, _ in model.named_parameters()}
  expected |= {name for name, _ in model.named_buffers() if 'running_' in name}
  if expected - assigned:
    raise ValueError(f'not set from the jal variables: {sorted(expected - assigned)}')


# -- preprocessing -----------------------------------------------------------------


def normalize(images_u8: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
  """uint8 NHWC to float32 NCHW ``(x / 255 - mean) / std``, as `jal.augment.normalize`."""
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
  ``offsets`` and then flipping left-right where ``flips`` (`jal.augment`):
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
  `jal.augment.rotations` (``rot90`` from the H axis towards the W axis).
  """
  rotated = torch.cat([torch.rot90(x, k, dims=(2, 3)) for k in range(4)])
  labels = torch.arange(4, device=x.device).repeat_interleave(x.shape[0])
  return rotated, labels


# -- losses ------------------------------------------------------------------------


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
  if mask is None:
    return values.mean()
  return (values * mask).sum() / mask.sum().clamp_min(1.0)


def ce_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
            mask: torch.Tensor | None = None) -> torch.Tensor:
  """Cross-entropy of the classifier head (`jal.training.cross_entropy_loss`)."""
  logits, _ = model(x)
  return _masked_mean(F.cross_entropy(logits, y.long(), reduction='none'), mask)


def _rotation_loss(rotation_logits, rotation_labels, mask):
  per_example = F.cross_entropy(rotation_logits, rotation_labels, reduction='none')
  return _masked_mean(per_example, None if mask is None else mask.repeat(4))


def scoring_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
  """PAL's scoring-network loss (`jal.strategies.pal.scoring_loss`).

  One forward of the ``4B`` rotated batch: rotation cross-entropy over all of
  it plus the classifier's cross-entropy on the unrotated first quarter.
  """
  rotated, rotation_labels = rotation_batch(x)
  class_logits, rotation_logits = model(rotated)
  classification = _masked_mean(
      F.cross_entropy(class_logits[:x.shape[0]], y.long(), reduction='none'), mask)
  return classification + _rotation_loss(rotation_logits, rotation_labels, mask)


def pretext_loss(model: nn.Module, x: torch.Tensor,
                 mask: torch.Tensor | None = None) -> torch.Tensor:
  """Rotation cross-entropy on the ``4B`` batch (`jal.strategies.pal.pretext_loss`)."""
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
  as do ``loss.backward()`` and the foreach ``optimizer.step``. On the 2-core
  CPU this, ``torch.compile(model)`` alone and this plus a compiled optimizer
  step had the same steady state within noise (ResNet-18 width 16, batch 32:
  41-45 ms vs 53 ms eager); this one compiles once per loss and shape and is
  reused by later Trainers. ``compile_optimizer=True`` adds a compiled
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


def _padded_batches(indices: np.ndarray, batch_size: int, device: torch.device):
  """Yields ``(idx [batch_size] on device, num_valid)``, the last padded with 0 (jal's)."""
  indices = np.asarray(indices, np.int64)
  all_idx = torch.from_numpy(indices).to(device)
  for start in range(0, indices.shape[0], batch_size):
    batch = all_idx[start:start + batch_size]
    valid = batch.shape[0]
    if valid < batch_size:
      batch = torch.cat([batch, batch.new_zeros(batch_size - valid)])
    yield batch, valid


def _as_device(values, device: torch.device) -> torch.Tensor:
  return torch.as_tensor(values, dtype=torch.float32).to(device)


@torch.inference_mode()
def predict(model: nn.Module, images_u8: torch.Tensor, indices: np.ndarray, batch_size: int,
            mean, std) -> np.ndarray:
  """Classifier logits ``[n, num_classes]`` (float32 NumPy) in eval mode, in fixed batches."""
  device = images_u8.device
  mean, std = _as_device(mean, device), _as_device(std, device)
  model.eval()
  outputs = []
  for idx, valid in _padded_batches(indices, batch_size, device):
    logits, _ = model(normalize(images_u8[idx], mean, std))
    outputs.append(logits[:valid])
  return torch.cat(outputs).float().cpu().numpy()


def score_batch(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
  """PAL's ``(S_S, S_C)`` of a normalised NCHW batch ``[B]``, its four rotations in one forward.

  ``S_S = -sum_k p(rotation k | x rotated by k)`` (`jal.acquisition.pal.self_supervision_score`),
  ``S_C = log C + mean_c log_softmax(classifier logits)`` of the unrotated copy
  (`classification_score`).
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
  mean, std = _as_device(mean, device), _as_device(std, device)
  model.eval()
  s_s, s_c = [], []
  for idx, valid in _padded_batches(indices, batch_size, device):
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
