"""VAAL's and TA-VAAL's training iteration in PyTorch, for `experiments/vaal_step.py`.

`Solver` transcribes an iteration of VAAL's reference ``solver.py``
(sinhasam/vaal; TA-VAAL's ranker and conditioning from TA-VAAL's code) in
the order of jal's step (`jal.strategies.vaal`), on jal's networks: `VAE`,
`Discriminator` and `torch_reference.networks.TaskNet`. What it matches,
where it departs from the reference code and why, is in the docstring of
``experiments/vaal_step.py``.
"""

from __future__ import annotations

import math
from typing import Callable

import ml_collections
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .networks import TaskNet
from .training import (crop_flip_normalize, draw_augmentation, epoch_batches, masked_mean,
                       normalize)
from .weights import copy_jal_variables


class Encoder(nn.Module):
  """`jal.models.vae.VAEEncoder` (VAAL's ``model.VAE.encoder``), NCHW, flax's names."""

  def __init__(self, z_dim: int, width: int, channels: int, height: int, width_px: int):
    super().__init__()
    in_channels = channels
    for index, multiplier in enumerate((1, 2, 4, 8)):
      self.add_module(f'conv{index + 1}',
                      nn.Conv2d(in_channels, width * multiplier, 4, 2, 1, bias=False))
      self.add_module(f'bn{index + 1}', nn.BatchNorm2d(width * multiplier))
      in_channels = width * multiplier
    # Four stride-2 convolutions: 32 -> 2. The reference flattens NCHW (View).
    self.flat_shape = (in_channels, height // 16, width_px // 16)
    self.fc_mu = nn.Linear(math.prod(self.flat_shape), z_dim)
    self.fc_logvar = nn.Linear(math.prod(self.flat_shape), z_dim)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    for index in range(1, 5):
      x = F.relu(getattr(self, f'bn{index}')(getattr(self, f'conv{index}')(x)))
    x = x.flatten(1)
    return self.fc_mu(x), self.fc_logvar(x)


class Decoder(nn.Module):
  """`jal.models.vae.VAEDecoder` for sides that are multiples of 8, NCHW."""

  def __init__(self, in_dim: int, width: int, channels: int, height: int, width_px: int):
    super().__init__()
    self.map_shape = (8 * width, height // 8, width_px // 8)
    self.fc = nn.Linear(in_dim, math.prod(self.map_shape))
    in_channels = 8 * width
    for index, multiplier in enumerate((4, 2, 1)):
      self.add_module(f'deconv{index + 1}',
                      nn.ConvTranspose2d(in_channels, width * multiplier, 4, 2, 1, bias=False))
      self.add_module(f'bn{index + 1}', nn.BatchNorm2d(width * multiplier))
      in_channels = width * multiplier
    # The reference's last layer, ConvTranspose2d(w, C, 1), is this 1x1 convolution.
    self.out = nn.Conv2d(width, channels, 1)

  def forward(self, z: torch.Tensor) -> torch.Tensor:
    x = self.fc(z).view(-1, *self.map_shape)
    for index in range(1, 4):
      x = F.relu(getattr(self, f'bn{index}')(getattr(self, f'deconv{index}')(x)))
    return self.out(x)


class VAE(nn.Module):
  """VAAL's β-VAE with TA-VAAL's optional condition on the decoder (`jal.models.VAE`)."""

  def __init__(self, z_dim: int, width: int, image_shape: tuple[int, int, int],
               condition_dim: int):
    super().__init__()
    height, width_px, channels = image_shape
    if height % 16 or width_px % 16:
      raise ValueError(f'image sides must be multiples of 16 here, got {image_shape}')
    self.z_dim = z_dim
    self.encoder = Encoder(z_dim, width, channels, height, width_px)
    self.decoder = Decoder(z_dim + condition_dim, width, channels, height, width_px)

  def forward(self, x: torch.Tensor, eps: torch.Tensor, condition: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mu, logvar = self.encoder(x)
    z = eps * torch.exp(0.5 * logvar) + mu  # the reference's reparameterize
    if condition is not None:
      z = torch.cat([z, condition], dim=1)
    return self.decoder(z), mu, logvar

  def jal_remap(self) -> dict[str, Callable[[str, np.ndarray], np.ndarray]]:
    """Reorders the linear layers next to the flattening: jal flattens NHWC, PyTorch NCHW."""
    c, h, w = self.encoder.flat_shape
    dc, dh, dw = self.decoder.map_shape

    def encoder_fc(leaf, value):  # weight [z, H*W*C] -> [z, C*H*W]; the bias is per z
      if leaf != 'kernel':
        return value
      return value.reshape(-1, h, w, c).transpose(0, 3, 1, 2).reshape(value.shape[0], -1)

    def decoder_fc(leaf, value):  # rows (h, w, c) -> (c, h, w)
      if leaf == 'kernel':
        return value.reshape(dh, dw, dc, -1).transpose(2, 0, 1, 3).reshape(dc * dh * dw, -1)
      return value.reshape(dh, dw, dc).transpose(2, 0, 1).reshape(-1)

    return {'encoder.fc_mu': encoder_fc, 'encoder.fc_logvar': encoder_fc,
            'decoder.fc': decoder_fc}


class Discriminator(nn.Module):
  """VAAL's latent discriminator D(z) (TA-VAAL: D(z, r)), ending in a sigmoid as the reference."""

  def __init__(self, in_dim: int, width: int, num_hidden: int):
    super().__init__()
    for index in range(num_hidden):
      self.add_module(f'fc{index + 1}', nn.Linear(in_dim if index == 0 else width, width))
    self.num_hidden = num_hidden
    self.out = nn.Linear(width, 1)

  def forward(self, z: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
    x = z if condition is None else torch.cat([z, condition], dim=1)
    for index in range(1, self.num_hidden + 1):
      x = F.relu(getattr(self, f'fc{index}')(x))
    return torch.sigmoid(self.out(x))[:, 0]


def _bce_float32(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
  # Outside autocast: CUDA's autocast refuses binary_cross_entropy on probabilities.
  with torch.autocast(probabilities.device.type, enabled=False):
    return F.binary_cross_entropy(probabilities.float(), targets.float(), reduction='none')


def _bce(probabilities: torch.Tensor, target: float, mask: torch.Tensor | None) -> torch.Tensor:
  targets = torch.full_like(probabilities, target)
  return masked_mean(_bce_float32(probabilities, targets), mask)


def pairwise_ranking_loss(predicted: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
  """TA-VAAL's ``LossPredLoss`` (Eq. 1): pair ``i`` with ``B - 1 - i``, BCE of the order."""
  half = predicted.shape[0] // 2
  diff = (predicted - predicted.flip(0))[:half]
  order = ((target - target.flip(0))[:half].detach() > 0).float()
  weight = mask[:half] * mask.flip(0)[:half]
  return masked_mean(_bce_float32(torch.sigmoid(diff), order), weight)


def _kaiming(module: nn.Module) -> None:
  """The reference's ``kaiming_init``: He-normal weights, zero biases, BN 1 and 0."""
  if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.kaiming_normal_(module.weight)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    module.reset_parameters()


class Solver:
  """VAAL's (``settings.task_aware``: TA-VAAL's) training, eager or with its pieces compiled.

  Args:
    settings: jal's ``config.strategy.vaal`` section (`jal.strategies.vaal.default_config`).
    train_config: the task model's (``learning_rate``, ``momentum``,
      ``weight_decay``, ``crop_pad``, ``flip``).
    network, width, num_classes: the task model (`torch_reference.networks.build_network`).
    images: uint8 ``[N, H, W, C]``; labels: int ``[N]``.
    num_labeled, num_unlabeled: the labeled pool is the first ``num_labeled``
      images, the unlabeled pool the next ``num_unlabeled``.
    mean, std: float32 ``[C]`` normalisation.
    batch_size: ``B``, of both the labeled and the unlabeled batch.
    epochs: passes over the labeled pool per `run`.
    dtype: ``'float32'`` or ``'bfloat16'`` (autocast).
    compiled: ``torch.compile`` the five pieces of an iteration.
    full_vae: run the whole VAE in D's step, as the reference code (False:
      the encoder, as jal).
  """

  def __init__(self, settings: ml_collections.ConfigDict,
               train_config: ml_collections.ConfigDict, network: str, width: int | None,
               num_classes: int, images: np.ndarray, labels: np.ndarray, num_labeled: int,
               num_unlabeled: int, mean: np.ndarray, std: np.ndarray, *, batch_size: int,
               epochs: int, dtype: str, compiled: bool, full_vae: bool):
    self.compiled = compiled
    self.batch_size, self.epochs, self.dtype = batch_size, epochs, dtype
    self.name = 'torch compile' if compiled else 'torch eager'
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = settings
    self.conditioned = bool(cfg.task_aware)
    self.train_cfg = train_config
    self.beta, self.adversary_weight = cfg.beta, cfg.adversary_weight
    self.ranking_weight, self.ranker_epochs = cfg.ranking_weight, cfg.ranker_epochs
    self.vae_lr = cfg.vae_train.learning_rate
    self.d_lr = cfg.discriminator_train.learning_rate
    self.crop_pad, self.flip = train_config.crop_pad, train_config.flip
    self.full_vae = full_vae
    self.images = torch.from_numpy(images).to(self.device)
    self.labels = torch.from_numpy(labels.astype(np.int64)).to(self.device)
    self.mean = torch.from_numpy(np.asarray(mean, np.float32)).to(self.device)
    self.std = torch.from_numpy(np.asarray(std, np.float32)).to(self.device)
    self.labeled = np.arange(num_labeled)
    self.unlabeled = np.arange(num_labeled, num_labeled + num_unlabeled)
    self.generator = torch.Generator(device=self.device)
    torch.manual_seed(0)
    condition = 1 if self.conditioned else 0
    self.task = TaskNet(network, width, num_classes,
                        cfg.loss_prediction_width if self.conditioned else None).to(self.device)
    self.vae = VAE(cfg.vae.z_dim, cfg.vae.width, tuple(images.shape[1:]),
                   condition).to(self.device)
    self.discriminator = Discriminator(cfg.vae.z_dim + condition, cfg.discriminator.width,
                                       cfg.discriminator.num_hidden).to(self.device)
    if self.device.type == 'cuda':  # cuDNN's fast layout, as experiments/benchmark.py
      self.task.to(memory_format=torch.channels_last)
      self.vae.to(memory_format=torch.channels_last)
    pieces = {'prepare': self._prepare_impl, 'rank': self._rank_impl,
              'task_loss': self._task_loss_impl, 'vae_loss': self._vae_loss_impl,
              'd_loss': self._d_loss_impl}
    for name, fn in pieces.items():
      setattr(self, f'_{name}', torch.compile(fn, dynamic=False) if compiled else fn)
    self.opt_task = self.opt_vae = self.opt_d = None

  # -- the pieces of an iteration (compiled with ``compiled``) --------------------------

  def _prepare_impl(self, idx, offsets, flips):
    return crop_flip_normalize(self.images, idx, offsets, flips, self.crop_pad, self.mean,
                               self.std)

  def _rank_impl(self, x):
    with torch.no_grad():  # the task model in eval mode (set by the caller)
      _, predicted = self.task(x)
      return torch.sigmoid(predicted.float())[:, None]

  def _task_loss_impl(self, x, y, mask):
    logits, predicted = self.task(x)
    per_example = F.cross_entropy(logits.float(), y, reduction='none')
    loss = masked_mean(per_example, mask)
    if predicted is not None:
      loss = loss + self.ranking_weight * pairwise_ranking_loss(predicted.float(), per_example,
                                                                mask)
    return loss

  def _vae_terms(self, x, recon, mu, logvar, mask):
    mse = ((recon.float() - x) ** 2).flatten(1).mean(dim=1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return masked_mean(mse, mask), masked_mean(kl, mask)

  def _vae_loss_impl(self, x_l, x_u, r_l, r_u, mask, eps_l, eps_u):
    recon, mu, logvar = self.vae(x_l, eps_l, r_l)
    rec_l, kl_l = self._vae_terms(x_l, recon, mu, logvar, mask)
    unlab_recon, unlab_mu, unlab_logvar = self.vae(x_u, eps_u, r_u)
    rec_u, kl_u = self._vae_terms(x_u, unlab_recon, unlab_mu, unlab_logvar, None)
    adv = (_bce(self.discriminator(mu, r_l), 1.0, mask)
           + _bce(self.discriminator(unlab_mu, r_u), 1.0, None))
    reconstruction, kl = rec_l + rec_u, kl_l + kl_u
    total = reconstruction + self.beta * kl + self.adversary_weight * adv
    return total, reconstruction, kl, adv

  def _d_loss_impl(self, x_l, x_u, r_l, r_u, mask):
    with torch.no_grad():
      if self.full_vae:
        zeros = torch.zeros(x_l.shape[0], self.vae.z_dim, device=x_l.device)
        _, mu, _ = self.vae(x_l, zeros, r_l)
        _, unlab_mu, _ = self.vae(x_u, zeros, r_u)
      else:
        mu, _ = self.vae.encoder(x_l)
        unlab_mu, _ = self.vae.encoder(x_u)
    return (_bce(self.discriminator(mu, r_l), 1.0, mask)
            + _bce(self.discriminator(unlab_mu, r_u), 0.0, None))

  # -- one iteration and the epochs -------------------------------------------------

  def _autocast(self):
    return torch.autocast(self.device.type, dtype=torch.bfloat16,
                          enabled=self.dtype == 'bfloat16')

  def _batch(self, idx):
    offsets, flips = draw_augmentation(idx.shape[0], self.crop_pad, self.flip, self.device,
                                       self.generator)
    return self._prepare(idx, offsets, flips)

  def iteration(self, idx_l, mask_l, idx_u, first_epoch: bool):
    """One iteration: the task model's, the VAE's and D's updates; returns the three losses."""
    b = idx_l.shape[0]
    x_l, x_u = self._batch(idx_l), self._batch(idx_u)
    r_l = r_u = None
    if self.conditioned:
      self.task.eval()
      r = self._rank(torch.cat([x_l, x_u]))
      self.task.train()
      if first_epoch:  # Algorithm 1, line 5: r ~ U(0, 1) in the first epoch (jal computes R too)
        r = torch.rand(r.shape, device=self.device, generator=self.generator)
      r_l, r_u = r[:b], r[b:]
    # 1. The task model (and the ranker).
    task_loss = self._task_loss(x_l, self.labels[idx_l], mask_l)
    self.opt_task.zero_grad(set_to_none=True)
    task_loss.backward()
    self.opt_task.step()
    # 2. The VAE: L_trans + lambda L_adv (D's gradients accumulate, as in the reference).
    eps_l = torch.randn(b, self.vae.z_dim, device=self.device, generator=self.generator)
    eps_u = torch.randn(b, self.vae.z_dim, device=self.device, generator=self.generator)
    vae_loss = self._vae_loss(x_l, x_u, r_l, r_u, mask_l, eps_l, eps_u)[0]
    self.opt_vae.zero_grad(set_to_none=True)
    vae_loss.backward()
    self.opt_vae.step()
    # 3. D on the updated VAE's latent means.
    d_loss = self._d_loss(x_l, x_u, r_l, r_u, mask_l)
    self.opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    self.opt_d.step()
    return task_loss.detach(), vae_loss.detach(), d_loss.detach()

  def setup(self) -> None:
    """A freshly initialised task model and its SGD optimiser (not timed, as on jal's side)."""
    for m in self.task.modules():
      if hasattr(m, 'reset_parameters'):
        m.reset_parameters()
    backbone = [p for name, p in self.task.named_parameters()
                if not name.startswith('loss_prediction.')]
    groups = [{'params': backbone}]
    if self.task.loss_prediction is not None:
      groups.append({'params': list(self.task.loss_prediction.parameters())})
    cfg = self.train_cfg
    self.opt_task = torch.optim.SGD(groups, lr=cfg.learning_rate, momentum=cfg.momentum,
                                    weight_decay=cfg.weight_decay)

  def run(self, _=None) -> None:
    """``epochs`` passes over the labeled pool, with a fresh VAE, D and Adam optimisers."""
    self.vae.apply(_kaiming)
    self.discriminator.apply(_kaiming)
    self.opt_vae = torch.optim.Adam(self.vae.parameters(), lr=self.vae_lr)
    self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr)
    self.generator.manual_seed(2)
    rng = np.random.default_rng(2)
    self.task.train()
    self.vae.train()
    self.discriminator.train()
    for epoch in range(self.epochs):
      progress_fraction = epoch / self.epochs
      if len(self.opt_task.param_groups) > 1:  # TA-VAAL's ranker: frozen after ranker_epochs
        frozen = progress_fraction >= self.ranker_epochs
        self.opt_task.param_groups[1]['lr'] = 0.0 if frozen else self.train_cfg.learning_rate
      idx_l, mask_l = epoch_batches(self.labeled, self.batch_size, rng)
      order_u = rng.permutation(self.unlabeled)
      positions = np.arange(idx_l.size) % order_u.size
      idx_u = order_u[positions].reshape(idx_l.shape)
      idx_l, mask_l, idx_u = (torch.from_numpy(a).to(self.device) for a in (idx_l, mask_l, idx_u))
      losses = None
      with self._autocast():
        for step in range(idx_l.shape[0]):
          losses = self.iteration(idx_l[step], mask_l[step], idx_u[step], epoch == 0)
      values = [float(v) for v in losses]  # the host reads the losses once per epoch, as jal
      if not all(math.isfinite(v) for v in values):
        raise RuntimeError(f'torch: non-finite losses {values} in epoch {epoch + 1}')
    if self.device.type == 'cuda':
      torch.cuda.synchronize()

  def losses(self, variables, idx_l, mask_l, idx_u) -> dict[str, np.ndarray]:
    """One batch's losses with jal's ``(task, vae, discriminator)`` variables copied in, the
    VAE's noise 0 and no augmentation (eager), for the agreement check of `vaal_step`."""
    task, vae, discriminator = variables
    copy_jal_variables(self.task, task)
    copy_jal_variables(self.vae, vae, self.vae.jal_remap())
    copy_jal_variables(self.discriminator, discriminator)
    device = self.device
    idx_l, idx_u = (torch.from_numpy(np.asarray(i, np.int64)).to(device) for i in (idx_l, idx_u))
    mask = torch.from_numpy(np.asarray(mask_l, np.float32)).to(device)
    x_l = normalize(self.images[idx_l], self.mean, self.std)
    x_u = normalize(self.images[idx_u], self.mean, self.std)
    b = x_l.shape[0]
    r_l = r_u = r = None
    if self.conditioned:
      self.task.eval()
      r = self._rank_impl(torch.cat([x_l, x_u]))
      r_l, r_u = r[:b], r[b:]
    self.task.train()
    self.vae.train()
    with torch.no_grad():
      task_loss = self._task_loss_impl(x_l, self.labels[idx_l], mask)
      zeros = torch.zeros(b, self.vae.z_dim, device=device)
      total, reconstruction, kl, adv = self._vae_loss_impl(x_l, x_u, r_l, r_u, mask, zeros, zeros)
      out = {'task_loss': task_loss, 'r': r[:, 0] if r is not None else torch.zeros(0),
             'reconstruction': reconstruction, 'kl': kl, 'adversarial': adv, 'vae_total': total,
             'discriminator_loss': self._d_loss_impl(x_l, x_u, r_l, r_u, mask)}
    return {k: v.float().cpu().numpy() for k, v in out.items()}

  def parameter_counts(self) -> dict[str, int]:
    count = lambda m: sum(p.numel() for p in m.parameters())
    return {'task': count(self.task), 'vae': count(self.vae), 'd': count(self.discriminator)}
