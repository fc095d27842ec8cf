r"""SCAL (Krishnan et al., paper 002) on Fashion-MNIST with the paper's protocol.

  python -m jal.main --config configs/scal_fashion_mnist.py --workdir runs/scal_fmnist

500 labels per round (the first 500 at random), 10 rounds, each query from a
random subset of 10,000; ResNet-18, SGD 0.1, momentum 0.9, weight decay
5e-4, 200 epochs, x0.1 at epoch 160. Fashion-MNIST comes through tfds or a
local copy (IDX files in ``fashion_mnist/``) under $JAL_DATA_DIR; there is
none on the development machines, so ``:runlocal`` needs one too.
``--config.strategy.name=featuresim`` / ``dfm`` / ... compare on the same
protocol. See `jal.config_util.scal_protocol`.

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    python -m jal.main --config configs/scal_fashion_mnist.py:runlocal \
        --workdir runs/scal_fmnist_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.scal_protocol('fashion_mnist', arg, budget=500)
