r"""Parameter counts of jal's segmentation networks against the reference implementations.

  python experiments/segmentation_param_counts.py               # jal's (JAX)
  python experiments/segmentation_param_counts.py --reference   # torchvision's (PyTorch)

DeepLabv3 with a MobileNetV2 encoder (`jal.models.segmentation_nets.DeepLabV3`)
is compared with torchvision's own modules composed the same way:
``mobilenet_v2().features[:-1]`` (the encoder without its last 1x1 conv)
followed by ``segmentation.deeplabv3.DeepLabHead(320, K)``. Trainable
parameters only (batch-norm scale and bias count; running statistics do not).

``--reference`` needs torch and torchvision. The CPU torch wheel here
(2.13.0+cpu) does not load torchvision 0.28.0's compiled operators, so the
script imports torchvision's model files without its package initialiser:
the model definitions are plain ``torch.nn`` and need none of those operators.
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
  from jal.models.segmentation_nets import DeepLabV3  # pylint: disable=g-import-not-at-top
  out = {}
  for k in CLASSES:
    net = DeepLabV3(num_classes=k)
    shapes = jax.eval_shape(lambda: net.init({'params': jax.random.key(0)},
                                             jnp.zeros((1, 64, 64, 3)), False))
    out[k] = sum(x.size for x in jax.tree.leaves(shapes['params']))
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--reference', action='store_true', help="torchvision's counts")
  args = parser.parse_args()
  counts = reference_counts() if args.reference else jal_counts()
  side = 'torchvision mobilenet_v2().features[:-1] + DeepLabHead' if args.reference else 'jal'
  for k, n in counts.items():
    print(f'{side}: DeepLabv3-MobileNetV2, {k} classes: {n:,} parameters')


if __name__ == '__main__':
  main()
