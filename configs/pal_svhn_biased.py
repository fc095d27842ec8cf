r"""PAL (paper 000) on SVHN from a biased initial pool (Sec. 4.3).

  python -m jal.main --config configs/pal_svhn_biased.py --workdir runs/pal_svhn_biased

Classes 0 and 1 are absent from the initial pool; they can only enter through
queries, and the class-count plot of `jal.compare` shows which strategy finds
them (PAL's Fig. 3). Otherwise PAL's protocol (`configs/pal_svhn.py`,
`jal.config_util.pal_protocol`). SVHN comes through tfds (``svhn_cropped``) or
a local copy under $JAL_DATA_DIR (none on the development machines).

Strategies compared over seeds, with what each queried per class:

  python -m jal.compare --config configs/pal_svhn_biased.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_svhn_biased_compare

  :runlocal   shrunk to run in minutes on 2 CPU cores:
    python -m jal.main --config configs/pal_svhn_biased.py:runlocal \
        --workdir runs/pal_svhn_biased_local
"""

from jal import config_util


def get_config(arg=None):
  arg = config_util.parse_arg(arg, runlocal=False)
  return config_util.pal_protocol('svhn_cropped', 'biased,runlocal' if arg.runlocal else 'biased')
