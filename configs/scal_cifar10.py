r"""SCAL (Krishnan et al., paper 002) on CIFAR-10 with the paper's protocol.

  python -m jal.main --config configs/scal_cifar10.py --workdir runs/scal_cifar10

1,000 labels per round (the first 1,000 at random), 10 rounds, each query
from a random subset of 10,000; ResNet-18, SGD 0.1, momentum 0.9, weight
decay 5e-4, 200 epochs, x0.1 at epoch 160. Every round also records the OOD
AUROC against SVHN and accuracy and ECE under Gaussian blur (Fig. 4). The
paper's comparisons run on the same protocol with
``--config.strategy.name=featuresim`` (or ``dfm``, ``random``, ``entropy``,
``coreset``, ``bald``, ``learning_loss``). See `jal.config_util.scal_protocol`.

  :runlocal   real CIFAR-10 (JPEG copy), shrunk to run in minutes on 2 CPU
              cores, OOD against MNIST:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/scal_cifar10.py:runlocal --workdir runs/scal_cifar10_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.scal_protocol('cifar10', arg, budget=1_000, ood_dataset='svhn_cropped',
                                   runlocal_ood_dataset='mnist')
