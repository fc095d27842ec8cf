"""A PyTorch reference for jal's networks, compiled steps, PAL round and VAAL iteration.

Used only by the scripts that time jal against PyTorch (eager and
``torch.compile``) in the same run (`experiments/benchmark.py`,
`experiments/vaal_step.py`, `experiments/profile_convolutions.py`), so every
piece here does the same work as its jal counterpart:

* `networks`: jal's CIFAR ResNet-18 and SmallCNN with a ``classifier`` and a
  ``rotation`` head (same layers, shapes and parameter counts as jal's
  ``MultiHeadNet``; see `jal.models`), and TA-VAAL's task model with its
  ranker.
* `training`: augmentation, the losses, `Trainer` (one SGD step and `fit`,
  with jal's batching) and `predict`.
* `pal`: PAL's scores and one PAL round (`jal.strategies.pal`).
* `vaal`: VAAL's VAE and discriminator and a transcription of VAAL's and
  TA-VAAL's training iteration (`jal.strategies.vaal`).
* `weights`: `copy_jal_variables`, a jal network's variables into its
  PyTorch counterpart, for agreement checks.

Differences that do not change the amount of work: initialisation is
PyTorch's default (use `copy_jal_variables` to compare numbers), BatchNorm's
running variance is updated with the unbiased batch variance (flax uses the
biased one), and the random draws of augmentation and shuffling differ from
jal's.
"""

from .networks import DEFAULT_WIDTHS, build_network, compiled
from .pal import pal_round, pal_scores
from .training import Trainer, predict
from .weights import copy_jal_variables

__all__ = ['DEFAULT_WIDTHS', 'Trainer', 'build_network', 'compiled', 'copy_jal_variables',
           'pal_round', 'pal_scores', 'predict']
