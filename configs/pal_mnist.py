r"""PAL (Bhatnagar et al., paper 000) on MNIST, with the protocol of its other datasets.

  python -m jal.main --config configs/pal_mnist.py --workdir runs/pal_mnist

The paper has no MNIST run; this is `jal.config_util.pal_protocol`: 10%
initial pool, +5% per round up to 30%, VGG-16 task model, ResNet-18 scoring
network, SGD lr 0.01, 100 epochs, batch 64, lambda1 = lambda2 = 1, K = 5
sub-queries; no flips (digits). Variants as `configs/pal_cifar10.py`
(``:noisy``, ``:biased``, ``:runlocal``). MNIST is offline here
(``JAL_DATA_DIR=../shared/data``); three strategies over three seeds:

  JAL_DATA_DIR=../shared/data python -m jal.compare --config configs/pal_mnist.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_mnist_compare

  :runlocal   real MNIST, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/pal_mnist.py:runlocal --workdir runs/pal_mnist_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.pal_protocol('mnist', arg)
