r"""TA-VAAL (paper 004) on its imbalanced CIFAR-10 (Sec. 4.3).

  python -m jal.main --config configs/tavaal_cifar10_imbalanced.py --workdir runs/tavaal_imb10
  python -m jal.main --config configs/tavaal_cifar10_imbalanced.py:x100 --workdir runs/tavaal_imb100

The first five classes of the train split keep a tenth (``:x10``, the
default) or a hundredth (``:x100``) of their images, drawn at random per seed;
the test split stays balanced. Otherwise the CIFAR-10 protocol ("we used the
same implementation for CIFAR10"): `configs/tavaal_cifar10.py`. Compare with
``python -m jal.compare ... --strategies=random,vaal,tavaal`` or
``--config.strategy.name=...``.

  :runlocal   real CIFAR-10 (JPEG copy), shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/tavaal_cifar10_imbalanced.py:runlocal,x100 --workdir runs/tavaal_imb
"""

from jal import config_util
from jal.errors import JalError


def get_config(arg=None):
  arg = config_util.parse_arg(arg, runlocal=False, x10=False, x100=False)
  if arg.x10 and arg.x100:
    raise JalError('choose one of the variants x10 and x100, not both')
  config = config_util.adversarial_protocol('tavaal', 'cifar10',
                                            'runlocal' if arg.runlocal else None)
  config.dataset.imbalance.kind = 'step'
  config.dataset.imbalance.classes = (0, 1, 2, 3, 4)
  config.dataset.imbalance.factor = 100.0 if arg.x100 else 10.0
  return config
