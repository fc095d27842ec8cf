r"""PAL on CIFAR-10 with the paper's protocol (Bhatnagar et al., Sec. 4, Table 2).

  python -m jal.main --config configs/pal_cifar10.py --workdir runs/pal_cifar10

10% initial pool (5,000), +5% per round up to 30%, VGG-16 task model, ResNet-18
scoring network, SGD lr 0.01, 100 epochs, batch 64, lambda1 = lambda2 = 1,
K = 5 sub-queries. Variants:

  :runlocal   real CIFAR-10, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/pal_cifar10.py:runlocal --workdir runs/pal_cifar10_local
  :noisy      20% of the oracle's labels wrong (PAL Sec. 4.2)
  :biased     classes 0 and 1 absent from the initial pool (PAL Sec. 4.3)

Compare against a baseline on the same initial pool with
``--config.strategy.name=random`` (or ``entropy``) and another --workdir.
"""

from jal import config_util


def get_config(arg=None):
  return config_util.pal_protocol('cifar10', arg)
