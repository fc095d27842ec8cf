r"""One VAAL / TA-VAAL training iteration: jal against a PyTorch transcription.

What is measured. One iteration of jal's VAAL / TA-VAAL training (the
compiled step of `jal.strategies.vaal.Strategy`, run by its
`jal.train.JointTrainer`) takes a labeled and an unlabeled batch of ``B``
images each and

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
builds it (`jal.strategies.build` of ``configs/vaal_cifar10.py`` or
``configs/tavaal_cifar10.py``, resized to the preset) and the figure is the
time of its ``fit`` over ``--epochs`` passes of the labeled pool
(``ceil(n_L / B)`` iterations each): gathering and augmenting both batches on
the device, the three updates, the per-epoch shuffles and the host's
per-epoch metric read-back. Iterations/s counts labeled batches; images/s
counts ``2B`` images per iteration. The first call is timed apart (its excess
over the median is the compile time; jal's initialisers are compiled before
it, for the parameter counts); the figure is the median of ``--repeats``
further calls.

How the PyTorch side matches. `torch_reference.vaal.Solver` transcribes one
iteration of VAAL's reference ``solver.py`` (sinhasam/vaal; TA-VAAL's ranker
and conditioning from TA-VAAL's ``selection_methods.py`` and
``train_test.py``), interleaved in the order of jal's step, with the same
networks: the task model is `torch_reference.networks.TaskNet`, the
backbone and classifier of `torch_reference.build_network` (TA-VAAL: plus
Learning Loss's loss prediction module on the backbone's stage outputs), the
VAE has jal's layout (four 4x4 stride-2 convolutions of ``w, 2w, 4w, 8w``
channels with batch norm, a linear layer to the mean and the log-variance, a
linear layer and three 4x4 stride-2 transposed convolutions back, a 1x1
convolution), D is the same MLP. Batches are gathered by index from a
device-resident uint8 tensor and padded-cropped, flipped and normalised with
`torch_reference.training.crop_flip_normalize`; the labeled pool is batched
as jal batches it (the last batch filled up and masked), the unlabeled
batches wrap around a shuffled order. Eager, and with ``--compile`` each of
the five pieces (the gather and augmentation, the rank pass, the task loss,
the VAE loss, D's loss) is ``torch.compile``d, their backward passes too; the
optimiser steps and random draws stay eager. It is on by default
(``--nocompile`` skips it); its compile time, printed with the figures, is
much shorter when inductor's on-disk cache holds an earlier run's kernels.

With ``--check`` (default), both sides first compute the losses of one batch
at initialisation, with jal's weights copied into the PyTorch networks
(`torch_reference.copy_jal_variables`), the VAE's noise set to 0 and no
augmentation: task loss, ``r``, reconstruction, KL, adversarial term, VAE
total and D's loss are printed side by side, with their largest difference.
The check runs PyTorch in float32, so with ``--dtype=bfloat16`` the
differences are bfloat16's; how closely the sides agreed is in
``experiments/README.md``.

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

import time
from typing import Any

from absl import app, flags
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import _bench
from jal import sharding, strategies
from jal.data import augment
from jal.objectives import Batch, adversarial
from jal.pool import Pool
from jal.task import make_task

# PyTorch and its transcription, imported by `_import_torch` only when the PyTorch side runs
# (--torch=false times jal alone, without torch installed).
torch = None
torch_vaal = None


def _import_torch() -> None:
  """Imports torch and `torch_reference.vaal` into this module, or exits with one line."""
  global torch, torch_vaal
  try:
    import torch  # pylint: disable=g-import-not-at-top,redefined-outer-name
  except ImportError as e:  # pragma: no cover
    raise SystemExit(f'vaal_step: the PyTorch side needs torch ({e}); pip install -e ".[bench]" '
                     'or pass --torch=false') from None
  from torch_reference import vaal as torch_vaal  # pylint: disable=g-import-not-at-top

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
_SIZES = _bench.size_flags(
    width='Channels of the task network\'s first stage.',
    vae_width='Channels of the VAE\'s first convolution.',
    z_dim='VAE latent dimension.',
    d_width='Units of each hidden layer of D.',
    d_hidden='Hidden layers of D (default: the preset\'s, or the protocol\'s: 2 for VAAL, 4 '
    'for TA-VAAL).',
    lp_width='Width of TA-VAAL\'s loss prediction module.',
    batch_size='B, of both the labeled and unlabeled batch.',
    num_labeled='n_L, the labeled pool.',
    num_unlabeled='n_U, the unlabeled pool.',
    epochs='Passes over the labeled pool per timed call.',
    repeats='Timed calls after the compiling one.')
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

NUM_CLASSES = _bench.NUM_CLASSES


def _settings() -> ml_collections.ConfigDict:
  s = _bench.settings(PRESETS, _PRESET.value, [_NETWORK, *_SIZES, _COMPILE],
                      method=_METHOD.value, dtype=_DTYPE.value)
  if _DRY_RUN.value:
    s.num_labeled, s.num_unlabeled, s.epochs, s.repeats = s.batch_size, s.batch_size, 1, 0
  return s


def _config(s) -> ml_collections.ConfigDict:
  """The experiment config of ``s.method`` (``configs/<method>_cifar10.py``), resized."""
  config = _bench.protocol(f'{s.method}_cifar10')
  config.dataset.name = 'synthetic'
  config.model.name, config.model.width, config.model.dtype = s.network, s.width, s.dtype
  config.train.epochs = s.epochs
  config.train.batch_size = s.batch_size
  config.train.lr_schedule = 'constant'  # the PyTorch side keeps one rate; no cost either way
  cfg = config.strategy.vaal
  cfg.vae.width, cfg.vae.z_dim, cfg.vae.dtype = s.vae_width, s.z_dim, s.dtype
  cfg.discriminator.width = s.d_width
  if s.d_hidden is not None:
    cfg.discriminator.num_hidden = s.d_hidden
  cfg.loss_prediction_width = s.lp_width
  return config


def _count(tree) -> int:
  return int(sum(np.size(x) for x in jax.tree.leaves(tree)))


# -------------------------------------------------------------------- jal ---


class JalSide:
  """jal's strategy, task-model Trainer and pools, as `jal.experiment.run` builds them."""

  name = 'jal'

  def __init__(self, s, config, dataset):
    self.s = s
    self.mesh = sharding.make_mesh()
    task = make_task(dataset.class_names)
    self.spec = dataset.spec
    self.strategy = strategies.build(config, dataset.pool_data(), task, self.mesh)
    self.trainer = self.strategy.trainer
    labeled = np.arange(s.num_labeled)
    self.pool = Pool(dataset.num_train, np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
        labeled, dataset.train_labels[labeled])
    on_device = sharding.replicated(self.mesh)
    self.images = jax.device_put(dataset.train_images, on_device)
    self.labels = jax.device_put(task.label_array(self.pool), on_device)

  def initial_variables(self):
    """The task model's, the VAE's and D's variables at initialisation."""
    strategy = self.strategy
    task = self.trainer.init(jax.random.key(0)).variables
    vae, discriminator = strategy.init_networks(jax.random.key(1))
    return task, vae.variables, {'params': discriminator.params}

  def setup(self):
    return jax.block_until_ready(self.trainer.init(jax.random.key(0)))

  def run(self, state) -> None:
    fitted = self.strategy.fit(state, self.images, self.labels, self.pool,
                               key=jax.random.key(2), description=f'{self.s.method} fit')
    jax.block_until_ready((fitted.state, fitted.aux))

  def losses(self, variables, idx_l, mask_l, idx_u) -> dict[str, np.ndarray]:
    """One batch's losses at ``variables``, VAE noise 0, no augmentation (for `--check`)."""
    strategy, trainer, spec = self.strategy, self.trainer, self.spec
    cfg = strategy.settings

    def impl(task, vae, discriminator, images, labels, idx_l, mask_l, idx_u):
      x_l = augment.normalize(images[idx_l], spec.mean, spec.std)
      x_u = augment.normalize(images[idx_u], spec.mean, spec.std)
      mask_u = jnp.ones_like(mask_l)
      b = idx_l.shape[0]
      r = strategy.rank(task, jnp.concatenate([x_l, x_u]))
      r_l, r_u = (r[:b], r[b:]) if r is not None else (None, None)
      task_loss, _ = trainer.loss_fn(trainer.model.apply, task,
                                     Batch(x_l, labels[idx_l], mask_l), jax.random.key(3),
                                     jnp.float32(0.0))
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


def torch_side(s, config, dataset, compiled: bool) -> torch_vaal.Solver:
  """The PyTorch transcription (`torch_reference.vaal.Solver`) of the same config."""
  return torch_vaal.Solver(
      strategies.settings(config), config.train, s.network, s.width, NUM_CLASSES,
      dataset.train_images, dataset.train_labels, s.num_labeled, s.num_unlabeled, dataset.mean,
      dataset.std, batch_size=s.batch_size, epochs=s.epochs, dtype=s.dtype, compiled=compiled,
      full_vae=_FULL_VAE.value)


# ------------------------------------------------------------------ report ---


def _check(jal_side: JalSide, torch_solver: torch_vaal.Solver, s) -> None:
  """Prints both sides' losses on one batch at initialisation, jal's weights in both."""
  b = s.batch_size
  idx_l = np.arange(b)
  idx_u = s.num_labeled + np.arange(b) % s.num_unlabeled
  mask = np.ones(b, np.float32)
  if b // 8:
    mask[-(b // 8):] = 0.0  # a filled-up last batch: the masked rows must not count
  variables = jal_side.initial_variables()
  jal_out = jal_side.losses(variables, idx_l, mask, idx_u)
  torch_out = torch_solver.losses(jax.device_get(variables), idx_l, mask, idx_u)
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
  s = _settings()
  config = _config(s)
  dataset = _bench.synthetic_dataset(s.num_labeled + s.num_unlabeled)
  if _TORCH.value:
    _import_torch()
    torch.set_float32_matmul_precision('high')  # TF32 on a GPU, as XLA's default there

  sides: list[Any] = [JalSide(s, config, dataset)]
  if _TORCH.value:
    sides.append(torch_side(s, config, dataset, compiled=False))
    if s.compile:
      sides.append(torch_side(s, config, dataset, compiled=True))

  cfg = config.strategy.vaal
  steps = -(-s.num_labeled // s.batch_size)
  print(f'{s.method} iteration: task {s.network} width {s.width}, VAE width {cfg.vae.width} '
        f'z {cfg.vae.z_dim}, D {cfg.discriminator.width} x {cfg.discriminator.num_hidden} hidden'
        + (f', ranker width {cfg.loss_prediction_width}' if s.method == 'tavaal' else '')
        + f', {s.dtype}; B = {s.batch_size} labeled + {s.batch_size} unlabeled, n_L = '
        f'{s.num_labeled:,}, n_U = {s.num_unlabeled:,}, {s.epochs} epochs x {steps} iterations '
        f'per call, median of {s.repeats}' + (' (dry run: no figures)' if _DRY_RUN.value else ''))
  print(_bench.versions(torch if _TORCH.value else None), flush=True)
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
    is_torch = side.name != 'jal'
    if is_torch and torch.cuda.is_available():
      torch.cuda.reset_peak_memory_stats()
    timing = _bench.measure(side.run, s.repeats, setup=side.setup,
                            peak=lambda: _bench.peak_device_bytes(torch if is_torch else None))
    times = timing.times
    rows.append((side.name, timing.median, timing.compile_seconds, times))
    spread = f'{min(times):.2f}-{max(times):.2f}' if times else 'n/a'
    print(f'  {side.name:14s} fit {timing.median:8.3f} s (timed calls {spread} s), first call '
          f'{timing.first:.2f} s, wall {time.perf_counter() - start:.1f} s'
          f'{_bench.memory_text(timing.peak_bytes)}', flush=True)

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
