r"""SCAL (Krishnan et al., paper 002) on SVHN with the paper's protocol.

  python -m jal.main --config configs/scal_svhn.py --workdir runs/scal_svhn

1,000 labels per round (the first 1,000 at random), 10 rounds, each query
from a random subset of 10,000; ResNet-18, SGD 0.1, momentum 0.9, weight
decay 5e-4, 200 epochs, x0.1 at epoch 160; no flips (digits). SVHN comes
through tfds (``svhn_cropped``) or a local copy under $JAL_DATA_DIR; there
is none on the development machines, so ``:runlocal`` needs one too.
``--config.strategy.name=featuresim`` / ``dfm`` / ... compare on the same
protocol. See `jal.config_util.scal_protocol`.

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    python -m jal.main --config configs/scal_svhn.py:runlocal --workdir runs/scal_svhn_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.scal_protocol('svhn_cropped', arg, budget=1_000)
