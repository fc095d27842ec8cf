r"""One VAAL / TA-VAAL training iteration: jal against a PyTorch transcription.

What is measured. One iteration of jal's VAAL / TA-VAAL training
(`jal.strategies._vaal.AdversarialStrategy._step`) takes a labeled and an
unlabeled batch of ``B`` images each and

1. updates the task model (SGD with momentum and weight decay) on its
   cross-entropy (TA-VAAL: plus ``eta`` times the ranker's pairwise ranking
   loss);
2. updates the VAE (Adam 5e-4) on the reconstruction and ``beta`` KL terms of
   both batches plus ``lambda`` times the adversarial BCE through the
   discriminator D, target 1 for both batches;
3. updates D (Adam 5e-4) on the latent means of the just-updated VAE (no
   gradient into the VAE), BCE with 1 = labeled and 0 = unlabeled.

TA-VAAL also runs the task model in eval mode over both batches first, for
``r = sigmoid(R(x))`` (``r ~ U(0, 1)`` in the first epoch), which conditions
the VAE's decoder and D. The jal side is the strategy as the experiment loop
builds it (`jal.config_util.adversarial_protocol`, resized to the preset) and
the figure is the time of `fit_task_model` over ``--epochs`` passes of the
labeled pool (``ceil(n_L / B)`` iterations each): gathering and augmenting both
batches on the device, the three updates, the per-epoch shuffles and the host's
per-epoch metric read-back. Iterations/s counts labeled batches; images/s
counts ``2B`` images per iteration. The first call is timed apart (its excess
over the median is the compile time; jal's initialisers are compiled before
it, for the parameter counts); the figure is the median of ``--repeats``
further calls.

How the PyTorch side matches. It transcribes one iteration of VAAL's reference
``solver.py`` (sinhasam/vaal; TA-VAAL's ranker and conditioning from
TA-VAAL's ``selection_methods.py`` and ``train_test.py``), interleaved in the
order of jal's step, with the same networks: the task model is
`torch_reference.build_network`'s backbone and classifier (TA-VAAL: plus
Learning Loss's loss prediction module on the backbone's stage outputs, which
`torch_reference` does not have, so it is built here), the VAE has jal's
layout (four 4x4 stride-2 convolutions of ``w, 2w, 4w, 8w`` channels with
batch norm, a linear layer to the mean and the log-variance, a linear layer and
three 4x4 stride-2 transposed convolutions back, a 1x1 convolution), D is the
same MLP. Batches are gathered by index from a device-resident uint8 tensor and
padded-cropped, flipped and normalised with `torch_reference.crop_flip_normalize`;
the labeled pool is batched as jal batches it (the last batch filled up and
masked), the unlabeled batches wrap around a shuffled order. Eager, and with
``--compile`` each of the five pieces (the gather and augmentation, the rank
pass, the task loss, the VAE loss, D's loss) is ``torch.compile``d, their
backward passes too; the optimiser steps and random draws stay eager. It is
on by default (``--nocompile`` skips it): on the 2-core CPU it compiles in
25-30 s at the cpu preset's sizes, about 2 s when inductor's on-disk cache
holds an earlier run's kernels.

With ``--check`` (default), both sides first compute the losses of one batch
at initialisation, with jal's weights copied into the PyTorch networks, the
VAE's noise set to 0 and no augmentation: task loss, ``r``, reconstruction,
KL, adversarial term, VAE total and D's loss are printed side by side. At
both presets' sizes they agree to 4e-6 or better (the check runs PyTorch in
float32: with ``--dtype=bfloat16`` expect about 1e-3).

  pip install -e ".[bench]"
  python experiments/vaal_step.py --preset=cpu --method=vaal     # 2 CPU cores
  python experiments/vaal_step.py --preset=cpu --method=tavaal
  python experiments/vaal_step.py --preset=cpu --method=vaal --nocompile   # eager only
  python experiments/vaal_step.py --preset=gpu --method=tavaal   # where a GPU is present
  python experiments/vaal_step.py --preset=gpu --dry_run         # builds the GPU sizes, 1 step

What differs (and why):

- VAAL's reference code takes 2 VAE steps per iteration
  (``num_vae_steps = 2``, the second on new batches); jal's step and
  TA-VAAL's code take one, and so does the transcription.
- In D's step the reference runs the whole VAE under ``no_grad`` and keeps
  ``mu``; jal runs only the encoder. The transcription runs the encoder
  (``--d_step_full_vae`` runs the whole VAE, as the reference).
- The reference's KL is summed over the batch with ``beta = 1``; jal averages
  it over the batch with ``config.strategy.beta``. Both sides here use jal's
  form (a different weight, the same work).
- D ends with a sigmoid and ``BCELoss`` in the reference (kept here); jal
  returns the logit and uses ``sigmoid_binary_cross_entropy``.
- TA-VAAL's code trains the task model first and then the VAE and D, with the
  task model fixed (``train_vaal``); jal follows the paper's Algorithm 1, one
  interleaved iteration, and so does the transcription.
- TA-VAAL's reference gives D the raw ``R(x)`` and the VAE ``sigmoid(R(x))``;
  the paper (and jal, and this transcription) gives both ``sigmoid(R(x))``. Its
  reference skips the rank pass at iteration 0; jal computes it in the whole
  first epoch and replaces it by ``U(0, 1)``, and so does the transcription.
  The rank pass runs once on the concatenated ``2B`` batch on both sides (the
  reference runs the two batches separately).
- The reference's VAE step also accumulates gradients into D's parameters
  (cleared before D's step); kept. jal differentiates only the VAE.
- Initialisation (PyTorch defaults for the task model, Kaiming-normal for the
  VAE and D), PyTorch's running variance (unbiased) and the random draws
  differ from jal's; none changes the work.
  Both sides re-initialise the VAE and D inside the timed call (the experiment
  does it every round); the task model is initialised outside it.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable, Mapping

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jal import adversarial, augment, config_util, progress, sharding, training
from jal.data.dataset import Dataset
from jal.pool import Pool
from jal.strategies import tavaal, vaal

try:
  import torch
  import torch.nn.functional as F
  from torch import nn
except ImportError as e:  # pragma: no cover
  sys.exit(f'vaal_step: the PyTorch side needs torch ({e}); pip install -e ".[bench]"')

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # pylint: disable=g-import-not-at-top,wrong-import-position

PRESETS = {
    # 2 CPU cores: each side's fit takes 2-8 s; the whole run about 1.5 minutes.
    'cpu': dict(network='small_cnn', width=16, vae_width=16, z_dim=32, d_width=512, d_hidden=2,
                lp_width=32, batch_size=64, num_labeled=1_000, num_unlabeled=4_000, epochs=2,
                repeats=3, compile=True),
    # The papers' sizes (VAAL / TA-VAAL on CIFAR-10): ResNet-18, VAE width 128, batch 128,
    # 5,000 labeled of 50,000; D as the protocol has it (2 hidden layers, TA-VAAL 4).
    'gpu': dict(network='resnet18', width=64, vae_width=128, z_dim=32, d_width=512, d_hidden=None,
                lp_width=128, batch_size=128, num_labeled=5_000, num_unlabeled=45_000, epochs=5,
                repeats=5, compile=True),
}

_PRESET = flags.DEFINE_enum('preset', 'cpu', list(PRESETS), 'Sizes to start from.')
_METHOD = flags.DEFINE_enum('method', 'vaal', ['vaal', 'tavaal'], 'VAAL or TA-VAAL.')
_NETWORK = flags.DEFINE_enum('network', None, ['resnet18', 'small_cnn'], 'Task network.')
_WIDTH = flags.DEFINE_integer('width', None, 'Channels of the task network\'s first stage.')
_VAE_WIDTH = flags.DEFINE_integer('vae_width', None, 'Channels of the VAE\'s first convolution.')
_Z_DIM = flags.DEFINE_integer('z_dim', None, 'VAE latent dimension.')
_D_WIDTH = flags.DEFINE_integer('d_width', None, 'Units of each hidden layer of D.')
_D_HIDDEN = flags.DEFINE_integer('d_hidden', None, 'Hidden layers of D (default: the preset\'s, '
                                 'or the protocol\'s: 2 for VAAL, 4 for TA-VAAL).')
_LP_WIDTH = flags.DEFINE_integer('lp_width', None, 'Width of TA-VAAL\'s loss prediction module.')
_BATCH = flags.DEFINE_integer('batch_size', None, 'B, of both the labeled and unlabeled batch.')
_LABELED = flags.DEFINE_integer('num_labeled', None, 'n_L, the labeled pool.')
_UNLABELED = flags.DEFINE_integer('num_unlabeled', None, 'n_U, the unlabeled pool.')
_EPOCHS = flags.DEFINE_integer('epochs', None, 'Passes over the labeled pool per timed call.')
_REPEATS = flags.DEFINE_integer('repeats', None, 'Timed calls after the compiling one.')
_COMPILE = flags.DEFINE_bool('compile', None, 'Also time the torch.compiled transcription '
                             '(default: the preset\'s, on for both).')
_TORCH = flags.DEFINE_bool('torch', True, 'Run the PyTorch side.')
_CHECK = flags.DEFINE_bool('check', True, 'Compare both sides\' losses on one batch first.')
_FULL_VAE = flags.DEFINE_bool('d_step_full_vae', False, 'PyTorch side: run the whole VAE in D\'s '
                              'step, as the reference code (default: the encoder, as jal).')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'],
                           'Compute dtype (parameters stay float32; PyTorch uses autocast).')
_DRY_RUN = flags.DEFINE_bool('dry_run', False, 'Build everything at the preset\'s network sizes '
                             'but run one iteration per side, once (no figures): on the '
                             'CPU, --preset=gpu --dry_run takes about 5 minutes.')

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
MEAN = np.array([0.49, 0.48, 0.45], np.float32)
STD = np.array([0.25, 0.24, 0.26], np.float32)


def _settings() -> ml_collections.ConfigDict:
  s = ml_collections.ConfigDict(PRESETS[_PRESET.value])
  for name, flag in [('network', _NETWORK), ('width', _WIDTH), ('vae_width', _VAE_WIDTH),
                     ('z_dim', _Z_DIM), ('d_width', _D_WIDTH), ('d_hidden', _D_HIDDEN),
                     ('lp_width', _LP_WIDTH), ('batch_size', _BATCH),
                     ('num_labeled', _LABELED), ('num_unlabeled', _UNLABELED),
                     ('epochs', _EPOCHS), ('repeats', _REPEATS), ('compile', _COMPILE)]:
    if flag.value is not None:
      s[name] = flag.value
  if _DRY_RUN.value:
    s.num_labeled, s.num_unlabeled, s.epochs, s.repeats = s.batch_size, s.batch_size, 1, 0
  s.method = _METHOD.value
  s.dtype = _DTYPE.value
  return s


def _config(s) -> ml_collections.ConfigDict:
  """The experiment config of ``s.method`` (`adversarial_protocol`) at the preset's sizes."""
  config = config_util.adversarial_protocol(s.method, 'synthetic', None)
  config.model.name, config.model.width, config.model.dtype = s.network, s.width, s.dtype
  config.train.epochs = s.epochs
  config.train.batch_size = s.batch_size
  config.train.lr_schedule = 'constant'  # the PyTorch side keeps one rate; no cost either way
  cfg = config.strategy
  cfg.vae.width, cfg.vae.z_dim, cfg.vae.dtype = s.vae_width, s.z_dim, s.dtype
  cfg.discriminator.width = s.d_width
  if s.d_hidden is not None:
    cfg.discriminator.num_hidden = s.d_hidden
  cfg.loss_prediction_width = s.lp_width
  return config


def measure(setup: Callable[[], Any], run: Callable[[Any], Any],
            repeats: int) -> tuple[float, list[float]]:
  """``(first call's seconds, the timed calls' seconds)``; ``setup`` is not timed."""
  times = []
  for _ in range(1 + repeats):
    arg = setup()
    start = time.perf_counter()
    run(arg)
    times.append(time.perf_counter() - start)
  return times[0], times[1:]


def _count(tree) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


# -------------------------------------------------------------------- jal ---


class JalSide:
  """jal's strategy, task-model Trainer and pools, as `jal.experiment.run` builds them."""

  name = 'jal'

  def __init__(self, s, config, images: np.ndarray, labels: np.ndarray):
    self.s = s
    self.mesh = sharding.make_mesh()
    dataset = Dataset('synthetic', images, labels, images[:1], labels[:1],
                      tuple(str(c) for c in range(NUM_CLASSES)), True, MEAN, STD)
    strategy_cls = tavaal.Strategy if s.method == 'tavaal' else vaal.Strategy
    self.strategy = strategy_cls(config, dataset, self.mesh)
    self.trainer = training.Trainer(
        self.strategy.task_model(NUM_CLASSES), config.train, self.strategy.task_loss, MEAN, STD,
        True, self.mesh, IMAGE_SHAPE, freeze_after=self.strategy.task_freeze_after)
    labeled = np.arange(s.num_labeled)
    self.pool = Pool(images.shape[0], np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
        labeled, labels[labeled])
    on_device = sharding.replicated(self.mesh)
    self.images = jax.device_put(images, on_device)
    self.labels = jax.device_put(self.pool.label_array(), on_device)

  def initial_variables(self):
    """The task model's, the VAE's and D's variables at initialisation."""
    task = self.trainer.init(jax.random.key(0)).variables
    vae, discriminator = self.strategy._init_networks(jax.random.key(1))  # pylint: disable=protected-access
    return task, vae.variables, {'params': discriminator.params}

  def setup(self):
    return jax.block_until_ready(self.trainer.init(jax.random.key(0)))

  def run(self, state) -> None:
    state, _ = self.strategy.fit_task_model(
        self.trainer, state, self.images, self.labels, self.pool, epochs=self.s.epochs,
        key=jax.random.key(2), description=f'{self.s.method} fit')
    jax.block_until_ready(state)

  def losses(self, variables, idx_l, mask_l, idx_u) -> dict[str, np.ndarray]:
    """One batch's losses at ``variables``, VAE noise 0, no augmentation (for `--check`)."""
    strategy, trainer = self.strategy, self.trainer
    cfg = strategy.strategy_config

    def impl(task, vae, discriminator, images, labels, idx_l, mask_l, idx_u):
      x_l = augment.normalize(images[idx_l], MEAN, STD)
      x_u = augment.normalize(images[idx_u], MEAN, STD)
      mask_u = jnp.ones_like(mask_l)
      b = idx_l.shape[0]
      r = strategy._rank(trainer, task, jnp.concatenate([x_l, x_u]))  # pylint: disable=protected-access
      r_l, r_u = (r[:b], r[b:]) if r is not None else (None, None)
      task_loss, _ = trainer.loss_fn(trainer.model.apply, task, x_l, labels[idx_l], mask_l,
                                     jax.random.key(3), jnp.float32(0.0))
      # No 'sample' stream: z = mu (the VAE's noise is 0), as the PyTorch side with eps = 0.
      (rec_l, mu_l, logvar_l), updates = strategy.vae.apply(vae, x_l, True, r_l,
                                                            mutable=['batch_stats'])
      (rec_u, mu_u, logvar_u), _ = strategy.vae.apply({'params': vae['params'], **updates}, x_u,
                                                      True, r_u, mutable=['batch_stats'])
      terms_l = adversarial.vae_loss_terms(x_l, rec_l, mu_l, logvar_l, mask_l)
      terms_u = adversarial.vae_loss_terms(x_u, rec_u, mu_u, logvar_u, mask_u)
      logits_l = strategy.discriminator.apply(discriminator, mu_l, r_l)
      logits_u = strategy.discriminator.apply(discriminator, mu_u, r_u)
      reconstruction = terms_l['reconstruction'] + terms_u['reconstruction']
      kl = terms_l['kl'] + terms_u['kl']
      adv = adversarial.vae_adversarial_loss(logits_l, logits_u, mask_l, mask_u)
      return {'task_loss': task_loss, 'r': r if r is not None else jnp.zeros(0),
              'reconstruction': reconstruction, 'kl': kl, 'adversarial': adv,
              'vae_total': reconstruction + cfg.beta * kl + cfg.adversary_weight * adv,
              'discriminator_loss': adversarial.discriminator_loss(logits_l, logits_u, mask_l,
                                                                   mask_u)}

    out = jax.jit(impl)(*variables, self.images, self.labels, jnp.asarray(idx_l, jnp.int32),
                        jnp.asarray(mask_l), jnp.asarray(idx_u, jnp.int32))
    return {k: np.asarray(v) for k, v in out.items()}


# ---------------------------------------------------------------- PyTorch ---


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


def backbone_blocks(backbone: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
  """The stage outputs of a `torch_reference` backbone (jal's ``Features.blocks``)."""
  blocks = []
  if isinstance(backbone, ref.SmallCNN):
    for stage in range(1, 4):
      for index in range(1, 3):
        conv = getattr(backbone, f'stage{stage}_conv{index}')
        x = F.relu(getattr(backbone, f'stage{stage}_bn{index}')(conv(x)))
      if stage < 3:
        x = ref.max_pool_2x2(x)
      blocks.append(x)
    return blocks
  x = F.relu(backbone.stem_bn(backbone.stem_conv(x)))
  for index, name in enumerate(backbone.block_names):
    x = getattr(backbone, name)(x)
    if index % 2 == 1:
      blocks.append(x)
  return blocks


class TaskNet(nn.Module):
  """`torch_reference.build_network`'s backbone and classifier, plus TA-VAAL's ranker."""

  def __init__(self, network: str, width: int, num_classes: int, ranker_width: int | None):
    super().__init__()
    net = ref.build_network(network, width, num_classes)
    self.backbone, self.classifier = net.backbone, net.classifier
    self.loss_prediction = None
    if ranker_width:
      w = ref.DEFAULT_WIDTHS[network] if width is None else width
      channels = [w, 2 * w, 4 * w] if network == 'small_cnn' else [w, 2 * w, 4 * w, 8 * w]
      self.loss_prediction = LossPrediction(channels, ranker_width)

  def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    blocks = backbone_blocks(self.backbone, x)
    logits = self.classifier(blocks[-1].mean(dim=(2, 3)))
    predicted = self.loss_prediction(blocks) if self.loss_prediction is not None else None
    return logits, predicted


def copy_jal_variables(module: nn.Module, variables: Mapping[str, Any],
                       remap: Mapping[str, Callable[[str, np.ndarray], np.ndarray]] | None = None
                       ) -> None:
  """Copies flax variables into ``module`` by name (for `--check`), in place.

  Submodules carry the flax names; ``heads_<name>`` is the attribute ``<name>``
  (``heads_classifier/fc`` is ``classifier``). Conv kernels go from HWIO to
  OIHW; a transposed convolution's kernel is also flipped in space (flax's
  `ConvTranspose` correlates the dilated input with the kernel, PyTorch's with the
  flipped kernel); dense kernels are transposed; ``remap`` reorders a layer's
  values after that. Raises ValueError on a shape mismatch or an unset tensor.
  """
  names = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
           'var': 'running_var'}
  assigned = set()

  def visit(tree, path):
    if isinstance(tree, Mapping):
      for key, value in tree.items():
        visit(value, path + (key,))
      return
    *modules, leaf = path
    if modules and modules[0].startswith('heads_'):
      head = modules[0][len('heads_'):]
      modules = [head] if head == 'classifier' else [head, *modules[1:]]
    module_path = '.'.join(modules)
    target_module = module.get_submodule(module_path)
    value = np.array(tree, np.float32)
    if leaf == 'kernel':
      if value.ndim == 4 and isinstance(target_module, nn.ConvTranspose2d):
        value = value[::-1, ::-1].transpose(2, 3, 0, 1)
      elif value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
      else:
        value = value.T
    if remap and module_path in remap:
      value = remap[module_path](leaf, value)
    target = getattr(target_module, names[leaf])
    if tuple(target.shape) != value.shape:
      raise ValueError(f'{path}: jal shape {value.shape} != torch {tuple(target.shape)}')
    with torch.no_grad():
      target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    assigned.add(f'{module_path}.{names[leaf]}')

  for collection in ('params', 'batch_stats'):
    visit(variables.get(collection, {}), ())
  expected = {name for name, _ in module.named_parameters()}
  expected |= {name for name, _ in module.named_buffers() if 'running_' in name}
  if expected - assigned:
    raise ValueError(f'not set from the jal variables: {sorted(expected - assigned)}')


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
  if mask is None:
    return values.mean()
  return (values * mask).sum() / mask.sum().clamp_min(1.0)


def _bce_float32(probabilities: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
  # Outside autocast: CUDA's autocast refuses binary_cross_entropy on probabilities.
  with torch.autocast(probabilities.device.type, enabled=False):
    return F.binary_cross_entropy(probabilities.float(), targets.float(), reduction='none')


def _bce(probabilities: torch.Tensor, target: float, mask: torch.Tensor | None) -> torch.Tensor:
  targets = torch.full_like(probabilities, target)
  return _masked_mean(_bce_float32(probabilities, targets), mask)


def pairwise_ranking_loss(predicted: torch.Tensor, target: torch.Tensor,
                          mask: torch.Tensor) -> torch.Tensor:
  """TA-VAAL's ``LossPredLoss`` (Eq. 1): pair ``i`` with ``B - 1 - i``, BCE of the order."""
  half = predicted.shape[0] // 2
  diff = (predicted - predicted.flip(0))[:half]
  order = ((target - target.flip(0))[:half].detach() > 0).float()
  weight = mask[:half] * mask.flip(0)[:half]
  return _masked_mean(_bce_float32(torch.sigmoid(diff), order), weight)


def _kaiming(module: nn.Module) -> None:
  """The reference's ``kaiming_init``: He-normal weights, zero biases, BN 1 and 0."""
  if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
    nn.init.kaiming_normal_(module.weight)
    if module.bias is not None:
      nn.init.zeros_(module.bias)
  elif isinstance(module, nn.BatchNorm2d):
    module.reset_parameters()


class TorchSide:
  """The PyTorch transcription, eager or with its pieces ``torch.compile``d."""

  def __init__(self, s, config, images: np.ndarray, labels: np.ndarray, compiled: bool):
    self.s, self.compiled = s, compiled
    self.name = 'torch compile' if compiled else 'torch eager'
    self.device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    cfg = config.strategy
    self.conditioned = s.method == 'tavaal'
    self.train_cfg = config.train
    self.beta, self.adversary_weight = cfg.beta, cfg.adversary_weight
    self.ranking_weight, self.ranker_epochs = cfg.ranking_weight, cfg.ranker_epochs
    self.vae_lr = cfg.vae_train.learning_rate
    self.d_lr = cfg.discriminator_train.learning_rate
    self.crop_pad, self.flip = config.train.crop_pad, config.train.flip
    self.full_vae = _FULL_VAE.value
    self.images = torch.from_numpy(images).to(self.device)
    self.labels = torch.from_numpy(labels.astype(np.int64)).to(self.device)
    self.mean = torch.from_numpy(MEAN).to(self.device)
    self.std = torch.from_numpy(STD).to(self.device)
    self.labeled = np.arange(s.num_labeled)
    self.unlabeled = np.arange(s.num_labeled, s.num_labeled + s.num_unlabeled)
    self.generator = torch.Generator(device=self.device)
    torch.manual_seed(0)
    condition = 1 if self.conditioned else 0
    self.task = TaskNet(s.network, s.width, NUM_CLASSES,
                        cfg.loss_prediction_width if self.conditioned else None).to(self.device)
    self.vae = VAE(cfg.vae.z_dim, cfg.vae.width, IMAGE_SHAPE, condition).to(self.device)
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

  # -- the pieces of an iteration (compiled with --compile) --------------------------

  def _prepare_impl(self, idx, offsets, flips):
    return ref.crop_flip_normalize(self.images, idx, offsets, flips, self.crop_pad, self.mean,
                                   self.std)

  def _rank_impl(self, x):
    with torch.no_grad():  # the task model in eval mode (set by the caller)
      _, predicted = self.task(x)
      return torch.sigmoid(predicted.float())[:, None]

  def _task_loss_impl(self, x, y, mask):
    logits, predicted = self.task(x)
    per_example = F.cross_entropy(logits.float(), y, reduction='none')
    loss = _masked_mean(per_example, mask)
    if predicted is not None:
      loss = loss + self.ranking_weight * pairwise_ranking_loss(predicted.float(), per_example,
                                                                mask)
    return loss

  def _vae_terms(self, x, recon, mu, logvar, mask):
    mse = ((recon.float() - x) ** 2).flatten(1).mean(dim=1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return _masked_mean(mse, mask), _masked_mean(kl, mask)

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
                          enabled=self.s.dtype == 'bfloat16')

  def _batch(self, idx):
    offsets, flips = ref.draw_augmentation(idx.shape[0], self.crop_pad, self.flip, self.device,
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
    s = self.s
    self.vae.apply(_kaiming)
    self.discriminator.apply(_kaiming)
    self.opt_vae = torch.optim.Adam(self.vae.parameters(), lr=self.vae_lr)
    self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.d_lr)
    self.generator.manual_seed(2)
    rng = np.random.default_rng(2)
    self.task.train()
    self.vae.train()
    self.discriminator.train()
    for epoch in range(s.epochs):
      progress_fraction = epoch / s.epochs
      if len(self.opt_task.param_groups) > 1:  # TA-VAAL's ranker: frozen after ranker_epochs
        frozen = progress_fraction >= self.ranker_epochs
        self.opt_task.param_groups[1]['lr'] = 0.0 if frozen else self.train_cfg.learning_rate
      idx_l, mask_l = ref.epoch_batches(self.labeled, s.batch_size, rng)
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
    """`JalSide.losses` after copying jal's ``variables`` in (eager)."""
    task, vae, discriminator = variables
    copy_jal_variables(self.task, task)
    copy_jal_variables(self.vae, vae, self.vae.jal_remap())
    copy_jal_variables(self.discriminator, discriminator)
    device = self.device
    idx_l, idx_u = (torch.from_numpy(np.asarray(i, np.int64)).to(device) for i in (idx_l, idx_u))
    mask = torch.from_numpy(np.asarray(mask_l, np.float32)).to(device)
    x_l = ref.normalize(self.images[idx_l], self.mean, self.std)
    x_u = ref.normalize(self.images[idx_u], self.mean, self.std)
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
      recon, mu, logvar = self.vae(x_l, zeros, r_l)
      unlab_recon, unlab_mu, unlab_logvar = self.vae(x_u, zeros, r_u)
      rec_l, kl_l = self._vae_terms(x_l, recon, mu, logvar, mask)
      rec_u, kl_u = self._vae_terms(x_u, unlab_recon, unlab_mu, unlab_logvar, None)
      probs_l, probs_u = self.discriminator(mu, r_l), self.discriminator(unlab_mu, r_u)
      adv = _bce(probs_l, 1.0, mask) + _bce(probs_u, 1.0, None)
      reconstruction, kl = rec_l + rec_u, kl_l + kl_u
      out = {'task_loss': task_loss, 'r': r[:, 0] if r is not None else torch.zeros(0),
             'reconstruction': reconstruction, 'kl': kl, 'adversarial': adv,
             'vae_total': reconstruction + self.beta * kl + self.adversary_weight * adv,
             'discriminator_loss': _bce(probs_l, 1.0, mask) + _bce(probs_u, 0.0, None)}
    return {k: v.float().cpu().numpy() for k, v in out.items()}

  def parameter_counts(self) -> dict[str, int]:
    count = lambda m: sum(p.numel() for p in m.parameters())
    return {'task': count(self.task), 'vae': count(self.vae), 'd': count(self.discriminator)}


# ------------------------------------------------------------------ report ---


def _hardware() -> str:
  device = jax.devices()[0]
  cpu = f'{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()})'
  if device.platform == 'cpu':
    return cpu
  return f'{jax.device_count()} x {device.device_kind}, {cpu}'


def _check(jal_side: JalSide, torch_side: TorchSide, s) -> None:
  """Prints both sides' losses on one batch at initialisation, jal's weights in both."""
  b = s.batch_size
  idx_l = np.arange(b)
  idx_u = s.num_labeled + np.arange(b) % s.num_unlabeled
  mask = np.ones(b, np.float32)
  if b // 8:
    mask[-(b // 8):] = 0.0  # a filled-up last batch: the masked rows must not count
  variables = jal_side.initial_variables()
  jal_out = jal_side.losses(variables, idx_l, mask, idx_u)
  torch_out = torch_side.losses(jax.device_get(variables), idx_l, mask, idx_u)
  print(f'check: one batch at initialisation, jal\'s weights copied into PyTorch, VAE noise 0, '
        f'{int(b - mask.sum())} of {b} labeled rows masked')
  print(f'  {"quantity":20s} {"jal":>14s} {"torch":>14s} {"max |diff|":>11s}')
  for name in ('task_loss', 'r', 'reconstruction', 'kl', 'adversarial', 'vae_total',
               'discriminator_loss'):
    value = jal_out[name]
    if value.size == 0:
      continue
    value, other = value.reshape(-1), torch_out[name].reshape(-1)
    diff = float(np.max(np.abs(value.astype(np.float64) - other)))
    shown = lambda v: f'{float(v[0]):14.6f}' if v.size == 1 else f'{"[" + str(v.size) + "]":>14s}'
    print(f'  {name:20s} {shown(value)} {shown(other)} {diff:11.2e}')


def main(argv):
  del argv
  progress.set_enabled(False)
  s = _settings()
  config = _config(s)
  n = s.num_labeled + s.num_unlabeled
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
  labels = rng.integers(0, NUM_CLASSES, n).astype(np.int32)
  torch.set_float32_matmul_precision('high')  # TF32 on a GPU, as XLA's default there

  sides: list[Any] = [JalSide(s, config, images, labels)]
  if _TORCH.value:
    sides.append(TorchSide(s, config, images, labels, compiled=False))
    if s.compile:
      sides.append(TorchSide(s, config, images, labels, compiled=True))

  cfg = config.strategy
  steps = -(-s.num_labeled // s.batch_size)
  print(f'{s.method} iteration: task {s.network} width {s.width}, VAE width {cfg.vae.width} '
        f'z {cfg.vae.z_dim}, D {cfg.discriminator.width} x {cfg.discriminator.num_hidden} hidden'
        + (f', ranker width {cfg.loss_prediction_width}' if s.method == 'tavaal' else '')
        + f', {s.dtype}; B = {s.batch_size} labeled + {s.batch_size} unlabeled, n_L = '
        f'{s.num_labeled:,}, n_U = {s.num_unlabeled:,}, {s.epochs} epochs x {steps} iterations '
        f'per call, median of {s.repeats}' + (' (dry run: no figures)' if _DRY_RUN.value else ''))
  print(f'hardware: {_hardware()}; jax {jax.__version__} on {jax.default_backend()}', end='')
  if _TORCH.value:
    print(f', torch {torch.__version__} ({torch.get_num_threads()} threads)', end='')
  print(flush=True)
  task, vae, discriminator = sides[0].initial_variables()
  counts = f'parameters: jal task {_count(task["params"]):,} VAE {_count(vae["params"]):,} D ' \
           f'{_count(discriminator["params"]):,}'
  if _TORCH.value:
    c = sides[1].parameter_counts()
    counts += f'; torch task {c["task"]:,} VAE {c["vae"]:,} D {c["d"]:,}'
  print(counts, flush=True)
  if _TORCH.value and _CHECK.value:
    _check(sides[0], sides[1], s)

  rows = []
  for side in sides:
    start = time.perf_counter()
    first, times = measure(side.setup, side.run, s.repeats)
    median = statistics.median(times) if times else first
    compile_seconds = max(0.0, first - median) if times else float('nan')
    rows.append((side.name, median, compile_seconds, times))
    spread = f'{min(times):.2f}-{max(times):.2f}' if times else 'n/a'
    print(f'  {side.name:14s} fit {median:8.3f} s (timed calls {spread} s), first call '
          f'{first:.2f} s, wall {time.perf_counter() - start:.1f} s', flush=True)

  if _DRY_RUN.value:
    print('dry run: every side was built and ran one iteration; the times above include '
          'compiling and are not figures')
    return
  iterations = s.epochs * steps
  jal_rate = iterations / rows[0][1]
  print()
  print('| library | iterations/s | images/s | compile s | jal / this |')
  print('| --- | --- | --- | --- | --- |')
  for name, seconds, compile_seconds, _ in rows:
    rate = iterations / seconds
    ratio = '' if name == 'jal' else f'{jal_rate / rate:.2f}x'
    print(f'| {name} | {rate:.2f} | {rate * 2 * s.batch_size:,.0f} | {compile_seconds:.1f} | '
          f'{ratio} |')
  print('(jal / this: jal\'s iterations/s over this library\'s; above 1 jal is faster)')


if __name__ == '__main__':
  app.run(main)
