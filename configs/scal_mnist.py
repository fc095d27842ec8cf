r"""SCAL (Krishnan et al., paper 002) on MNIST, with the protocol of its other datasets.

  python -m jal.main --config configs/scal_mnist.py --workdir runs/scal_mnist

The paper has no MNIST run; this follows its Fashion-MNIST protocol (the
same image size): 500 labels per round (the first 500 at random), 10
rounds, each query from a random subset of 10,000; ResNet-18, SGD 0.1,
momentum 0.9, weight decay 5e-4, 200 epochs, x0.1 at epoch 160.
``--config.strategy.name=featuresim`` / ``dfm`` / ... compare on the same
protocol. See `jal.config_util.scal_protocol`.

  :runlocal   real MNIST, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/scal_mnist.py:runlocal --workdir runs/scal_mnist_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.scal_protocol('mnist', arg, budget=500)
