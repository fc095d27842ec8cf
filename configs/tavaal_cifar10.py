r"""TA-VAAL (Kim et al. 2021, paper 004) on CIFAR-10 with TA-VAAL's protocol (paper 004, Sec. 4.2).

  python -m jal.main --config configs/tavaal_cifar10.py --workdir runs/tavaal_cifar10

1,000 initial, +1,000 per round up to 10,000, ResNet-18, SGD 0.1 (x0.1 at
epoch 160 of 200), momentum 0.9, weight decay 5e-3, batch 128; VAE and
discriminator Adam 5e-4; each query from a random subset of 10,000 (10x the
budget). See `jal.config_util.adversarial_protocol` and `jal.strategies._vaal`.

  :runlocal   real CIFAR-10, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/tavaal_cifar10.py:runlocal --workdir runs/tavaal_cifar10_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.adversarial_protocol('tavaal', 'cifar10', arg)
