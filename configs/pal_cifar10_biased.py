r"""PAL (paper 000) on CIFAR-10 from a biased initial pool (Sec. 4.3).

  python -m jal.main --config configs/pal_cifar10_biased.py --workdir runs/pal_cifar10_biased

Classes 0 and 1 are absent from the initial pool; they can only enter through
queries, and the class-count plot of `jal.compare` shows which strategy finds
them (PAL's Fig. 3). Otherwise PAL's protocol (`configs/pal_cifar10.py`,
`jal.config_util.pal_protocol`). CIFAR-10 is offline here as a JPEG copy
(``JAL_DATA_DIR=../shared/data``).

Strategies compared over seeds, with what each queried per class:

  JAL_DATA_DIR=../shared/data python -m jal.compare \
      --config configs/pal_cifar10_biased.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_cifar10_biased_compare

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main --config configs/pal_cifar10_biased.py:runlocal \
        --workdir runs/pal_cifar10_biased_local
"""

from jal import config_util


def get_config(arg=None):
  arg = config_util.parse_arg(arg, runlocal=False)
  return config_util.pal_protocol('cifar10', 'biased,runlocal' if arg.runlocal else 'biased')
