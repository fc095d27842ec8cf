r"""MAL (paper 003) on its CIFAR100-Imbalanced (Sec. 4.1).

  python -m jal.main --config configs/mal_cifar100_imbalanced.py --workdir runs/mal_c100_imb

Each class of the train split keeps a random ratio of its images: each of
10^-2, 10^-1.5, 10^-1, 10^-0.5 and 1 goes to 20 classes chosen at random,
redrawn per seed ("each run starting with a different imbalanced
distribution"; the paper averages 10 runs: ``python -m jal.compare ...
--seeds=0,1,2,3,4,5,6,7,8,9``). The test split stays balanced. The labels
grow by 1,000 per split from 1,000 (the paper's "2000 labeled samples" at the
end of its first split: 2% of CIFAR-100's 50,000, as on the balanced set),
for 5 rounds; otherwise `configs/mal_cifar100.py`. CIFAR-100 comes through
tfds or a local copy under $JAL_DATA_DIR (none on the development machines).

  :runlocal   shrunk to run in minutes on 2 CPU cores (needs CIFAR-100 too):
    python -m jal.main --config configs/mal_cifar100_imbalanced.py:runlocal \
        --workdir runs/mal_c100_imb_local
"""

from jal import config_util


def get_config(arg=None):
  config = config_util.mal_protocol('cifar100', arg)
  config.dataset.imbalance.kind = 'random_ratios'
  if not config_util.parse_arg(arg, runlocal=False).runlocal:
    config.initial_pool.size = 1_000
    config.budget = 1_000
  return config
