r"""PAL on SVHN (cropped digits) with the paper's protocol (Bhatnagar et al., Sec. 4).

  python -m jal.main --config configs/pal_svhn.py --workdir runs/pal_svhn

SVHN comes through tfds (``svhn_cropped``: 73,257 train, 26,032 test), which
downloads it on a machine with internet; or put a copy in image-folder layout
(``svhn_cropped/`` or ``svhn_cropped.zip`` with ``train/<class>/*``,
``test/<class>/*``) under $JAL_DATA_DIR. 10% initial pool, +5% per round up to
30%, VGG-16 task model, ResNet-18 scoring network, SGD lr 0.01, 100 epochs,
batch 64, lambda1 = lambda2 = 1, K = 5 sub-queries. No horizontal flips (digits).
Variants: ``:runlocal`` (shrunk for a CPU), ``:noisy`` (20% wrong labels, Sec.
4.2), ``:biased`` (classes 0 and 1 absent from the initial pool, Sec. 4.3).
"""

from jal import config_util


def get_config(arg=None):
  return config_util.pal_protocol('svhn_cropped', arg)
