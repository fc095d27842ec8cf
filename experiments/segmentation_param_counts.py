r"""Parameter counts of jal's segmentation networks against the reference implementations.

  python experiments/segmentation_param_counts.py               # jal's (JAX)
  python experiments/segmentation_param_counts.py --reference   # torchvision's (PyTorch)

DeepLabv3 with a MobileNetV2 encoder (`jal.models.MobileNetV2` with `jal.models.DeepLabHead`)
is compared with torchvision's own modules composed the same way:
``mobilenet_v2().features[:-1]`` (the encoder without its last 1x1 conv)
followed by ``segmentation.deeplabv3.DeepLabHead(320, K)``. Trainable
parameters only (batch-norm scale and bias count; running statistics do not).

``--reference`` needs torch and torchvision. The CPU torch wheel here
(2.13.0+cpu) does not load torchvision 0.28.0's compiled operators, so the
script imports torchvision's model files without its package initialiser:
the model definitions are plain ``torch.nn`` and need none of those operators.

DRN-D-22's segmentation network (`jal.models.drn.DRND22` with
`jal.models.segmentation_nets.PixelClassifierHead`) is compared with the
authors' ``DRNSeg('drn_d_22', K)`` (Yu et al. 2017, github.com/fyu/drn):
``drn.drn_d_22()`` without its last two modules (average pool and fc), a 1x1
conv ``seg`` with bias, and a ConvTranspose2d ``up`` with fixed bilinear
weights (``requires_grad=False``), composed as in the authors' ``segment.py``.
jal upsamples bilinearly without weights, so the trainable counts compare;
the frozen ``up`` weights are printed apart. fyu/drn is not a package: pass
its ``drn.py`` (from a checkout of the repository) with ``--drn``::

  python experiments/segmentation_param_counts.py --reference --drn ~/drn/drn.py
"""

from __future__ import annotations

import argparse
import os
import sys
import types

CLASSES = (11, 19)


def reference_counts() -> dict[int, int]:
  import importlib.util  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(importlib.util.find_spec('torchvision').origin)
  package = types.ModuleType('torchvision')
  package.__path__ = [root]
  sys.modules['torchvision'] = package
  from torchvision.models.mobilenetv2 import mobilenet_v2  # pylint: disable=g-import-not-at-top
  from torchvision.models.segmentation.deeplabv3 import DeepLabHead  # pylint: disable=g-import-not-at-top
  count = lambda m: sum(p.numel() for p in m.parameters())
  del torch
  return {k: count(mobilenet_v2().features[:-1]) + count(DeepLabHead(320, k)) for k in CLASSES}


def jal_counts() -> dict[int, int]:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from jal.models import DeepLabHead, MobileNetV2, MultiHeadNet  # pylint: disable=g-import-not-at-top
  out = {}
  for k in CLASSES:
    net = MultiHeadNet(MobileNetV2(), {'classifier': DeepLabHead(k)})
    shapes = jax.eval_shape(lambda: net.init({'params': jax.random.key(0)},
                                             jnp.zeros((1, 64, 64, 3)), False))
    out[k] = sum(x.size for x in jax.tree.leaves(shapes['params']))
  return out


def drn_reference_counts(drn_py: str) -> dict[int, tuple[int, int]]:
  """``(trainable, frozen)`` parameters of fyu/drn's ``DRNSeg('drn_d_22', K)``, by ``K``."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location('drn', drn_py)
  drn = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(drn)
  out = {}
  for k in CLASSES:
    # segment.py's DRNSeg.__init__, without loading the pretrained weights.
    model = drn.drn_d_22(pretrained=False, num_classes=1000)
    base = nn.Sequential(*list(model.children())[:-2])
    seg = nn.Conv2d(model.out_dim, k, kernel_size=1, bias=True)
    up = nn.ConvTranspose2d(k, k, 16, stride=8, padding=4, output_padding=0, groups=k,
                            bias=False)
    up.weight.requires_grad = False
    params = [p for m in (base, seg, up) for p in m.parameters()]
    out[k] = (sum(p.numel() for p in params if p.requires_grad),
              sum(p.numel() for p in params if not p.requires_grad))
  return out


def drn_jal_counts() -> dict[int, int]:
  # pylint: disable=g-import-not-at-top
  import jax
  import jax.numpy as jnp
  from jal.models.drn import DRND22
  from jal.models.heads import MultiHeadNet
  from jal.models.segmentation_nets import PixelClassifierHead
  out = {}
  for k in CLASSES:
    net = MultiHeadNet(DRND22(), {'classifier': PixelClassifierHead(k)})
    shapes = jax.eval_shape(lambda: net.init({'params': jax.random.key(0)},
                                             jnp.zeros((1, 64, 64, 3)), False))
    out[k] = sum(x.size for x in jax.tree.leaves(shapes['params']))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference', action='store_true', help="torchvision's counts")
  parser.add_argument('--drn', metavar='DRN_PY',
                      help="with --reference: fyu/drn's drn.py, for DRN-D-22's reference counts")
  args = parser.parse_args()
  counts = reference_counts() if args.reference else jal_counts()
  side = 'torchvision mobilenet_v2().features[:-1] + DeepLabHead' if args.reference else 'jal'
  for k, n in counts.items():
    print(f'{side}: DeepLabv3-MobileNetV2, {k} classes: {n:,} parameters')
  if not args.reference:
    for k, n in drn_jal_counts().items():
      print(f'jal: DRN-D-22 (DRND22 + PixelClassifierHead), {k} classes: {n:,} parameters')
  elif args.drn:
    for k, (n, frozen) in drn_reference_counts(args.drn).items():
      print(f"fyu/drn DRNSeg('drn_d_22', {k}): {k} classes: {n:,} trainable parameters "
            f'(+ {frozen:,} frozen in up)')
  else:
    print('DRN-D-22: pass --drn PATH/drn.py (fyu/drn) for its reference counts', file=sys.stderr)


if __name__ == '__main__':
  main()
