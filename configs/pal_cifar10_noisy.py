r"""PAL (paper 000) on CIFAR-10 with a noisy oracle (Sec. 4.2).

  python -m jal.main --config configs/pal_cifar10_noisy.py --workdir runs/pal_cifar10_noisy

20% of the labels the oracle returns (initial pool and queries) are wrong,
uniformly among the other classes. Otherwise PAL's protocol
(`configs/pal_cifar10.py`, `jal.config_util.pal_protocol`). CIFAR-10 is offline
here as a JPEG copy (``JAL_DATA_DIR=../shared/data``).

Strategies compared over seeds, with what each queried per class:

  JAL_DATA_DIR=../shared/data python -m jal.compare \
      --config configs/pal_cifar10_noisy.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_cifar10_noisy_compare

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main --config configs/pal_cifar10_noisy.py:runlocal \
        --workdir runs/pal_cifar10_noisy_local
"""

from jal import config_util


def get_config(arg=None):
  arg = config_util.parse_arg(arg, runlocal=False)
  return config_util.pal_protocol('cifar10', 'noisy,runlocal' if arg.runlocal else 'noisy')
