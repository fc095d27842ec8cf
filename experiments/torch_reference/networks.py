"""jal's networks in PyTorch: CIFAR ResNet-18, the small CNN, their heads, the ranker.

Submodules carry jal's flax names (``stem_conv``, ``stage1_block1.conv1``,
...), so that `torch_reference.weights.copy_jal_variables` maps names one to
one. Initialisation is PyTorch's default (jal uses flax's LeCun-normal
kernels and zero biases), and BatchNorm's running variance is updated with
the unbiased batch variance (flax uses the biased one): neither changes the
amount of work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_WIDTHS = {'resnet18': 64, 'small_cnn': 32}


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

  def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the four stages (jal's ``Features.blocks``)."""
    x = F.relu(self.stem_bn(self.stem_conv(x)))
    out = []
    for index, name in enumerate(self.block_names):
      x = getattr(self, name)(x)
      if index % 2 == 1:
        out.append(x)
    return out

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.blocks(x)[-1].mean(dim=(2, 3))


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

  def blocks(self, x: torch.Tensor) -> list[torch.Tensor]:
    """The outputs of the three stages (jal's ``Features.blocks``)."""
    out = []
    for stage in range(1, 4):
      for index in range(1, 3):
        conv = getattr(self, f'stage{stage}_conv{index}')
        x = F.relu(getattr(self, f'stage{stage}_bn{index}')(conv(x)))
      if stage < 3:
        x = max_pool_2x2(x)
      out.append(x)
    return out

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.blocks(x)[-1].mean(dim=(2, 3))


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


class LossPrediction(nn.Module):
  """Learning Loss's loss prediction module (`jal.models.LossPredictionHead`): TA-VAAL's ranker."""

  def __init__(self, channels: list[int], width: int):
    super().__init__()
    for index, c in enumerate(channels):
      self.add_module(f'block{index + 1}_fc', nn.Linear(c, width))
    self.num_blocks = len(channels)
    self.fc = nn.Linear(width * len(channels), 1)

  def forward(self, blocks: list[torch.Tensor]) -> torch.Tensor:
    pooled = [F.relu(getattr(self, f'block{index + 1}_fc')(block.float().mean(dim=(2, 3))))
              for index, block in enumerate(blocks)]
    return self.fc(torch.cat(pooled, dim=1))[:, 0]


class TaskNet(nn.Module):
  """`build_network`'s backbone and classifier, plus TA-VAAL's ranker (``ranker_width``)."""

  def __init__(self, network: str, width: int | None, num_classes: int,
               ranker_width: int | None):
    super().__init__()
    net = build_network(network, width, num_classes)
    self.backbone, self.classifier = net.backbone, net.classifier
    self.loss_prediction = None
    if ranker_width:
      w = DEFAULT_WIDTHS[network] if width is None else width
      channels = [w, 2 * w, 4 * w] if network == 'small_cnn' else [w, 2 * w, 4 * w, 8 * w]
      self.loss_prediction = LossPrediction(channels, ranker_width)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    blocks = self.backbone.blocks(x)
    logits = self.classifier(blocks[-1].mean(dim=(2, 3)))
    predicted = self.loss_prediction(blocks) if self.loss_prediction is not None else None
    return logits, predicted
