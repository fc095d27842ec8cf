r"""MAL (Ebrahimi et al., paper 003) on CIFAR10 with the paper's CIFAR-100 protocol.

  python -m jal.main --config configs/mal_cifar10.py --workdir runs/mal_cifar10

2% initial, +2% per round up to 10%, ResNet-18, horizontal flips, Adam for F,
C and D, 100 epochs of MAL training, then the task model from F (Algorithm 3).
See `jal.config_util.mal_protocol` and `jal.strategies.mal`.

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/mal_cifar10.py:runlocal --workdir runs/mal_cifar10_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.mal_protocol('cifar10', arg)
