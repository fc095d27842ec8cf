r"""MAL (Ebrahimi et al., paper 003) on CIFAR100 with the paper's CIFAR-100 protocol.

  python -m jal.main --config configs/mal_cifar100.py --workdir runs/mal_cifar100

2% initial, +2% per round up to 10%, ResNet-18, horizontal flips, Adam for F,
C and D, 100 epochs of MAL training, then the task model from F (Algorithm 3).
See `jal.config_util.mal_protocol` and `jal.strategies.mal`.
CIFAR-100 comes through tfds (or a copy under $JAL_DATA_DIR); it is not in
the offline data of this project, so its test runs on tfds mock data.

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/mal_cifar100.py:runlocal --workdir runs/mal_cifar100_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.mal_protocol('cifar100', arg)
