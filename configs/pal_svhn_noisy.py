r"""PAL (paper 000) on SVHN with a noisy oracle (Sec. 4.2).

  python -m jal.main --config configs/pal_svhn_noisy.py --workdir runs/pal_svhn_noisy

20% of the labels the oracle returns (initial pool and queries) are wrong,
uniformly among the other classes. Otherwise PAL's protocol
(`configs/pal_svhn.py`, `jal.config_util.pal_protocol`). SVHN comes through
tfds (``svhn_cropped``) or a local copy under $JAL_DATA_DIR (none on the
development machines).

Strategies compared over seeds, with what each queried per class:

  python -m jal.compare --config configs/pal_svhn_noisy.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_svhn_noisy_compare

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    python -m jal.main --config configs/pal_svhn_noisy.py:runlocal \
        --workdir runs/pal_svhn_noisy_local
"""

from jal import config_util


def get_config(arg=None):
  arg = config_util.parse_arg(arg, runlocal=False)
  return config_util.pal_protocol('svhn_cropped', 'noisy,runlocal' if arg.runlocal else 'noisy')
