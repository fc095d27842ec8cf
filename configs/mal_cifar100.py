r"""MAL (Ebrahimi et al. 2020) on CIFAR-100 with the paper's protocol.

  python -m jal.main --config configs/mal_cifar100.py --workdir runs/mal_cifar100

MAL's CIFAR-100 protocol (Ebrahimi et al. 2020, Sec. 4.1 and App. B): 2%
initial, +2% per round up to 10% (5 rounds), ResNet-18 (Xavier
initialisation in the paper; jal's ResNet-18 keeps its He init), horizontal
flips only, Adam for F, C and D, 100 epochs of the minimax game, then the
task model from F (Algorithm 3). The paper gives neither the learning
rates, the batch size, nor how the task model of Algorithm 3 is optimised:
Adam 5e-4 (VAAL's, by the same group), batch 128 and 100 epochs for all.
CIFAR-100 comes through tfds (or a copy under $JAL_DATA_DIR); it is not in
the offline data of this project, so its tests run on tfds mock data.

Variants (combinable):

  :imbalanced CIFAR100-Imbalanced (Sec. 4.1): each class of the train split keeps a
              random ratio of its images, each of 10^-2, 10^-1.5, 10^-1, 10^-0.5
              and 1 going to 20 classes chosen at random, redrawn per seed (the
              paper averages 10 runs: ``python -m jal.compare ...
              --seeds=0,1,2,3,4,5,6,7,8,9``); the test split stays balanced. The
              labels grow by 1,000 per split from 1,000 (the paper's "2000
              labeled samples" at the end of its first split)

  :runlocal   shrunk to run in minutes on 2 CPU cores (1,000 + 500 per round
              for 3 rounds, a width-16 small CNN, 15 epochs of each training):
    python -m jal.main --config configs/mal_cifar100.py:runlocal \
        --workdir runs/mal_cifar100_local
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False, imbalanced=False)
  config = common.base()
  config.dataset.name = 'cifar100'
  config.initial_pool.size = 0.02
  config.budget = 0.02
  config.num_rounds = 5
  config.model.name = 'resnet18'
  adam = dict(optimizer='adam', learning_rate=5e-4, momentum=0.0, weight_decay=0.0,
              batch_size=128, crop_pad=0)
  config.train = common.train(epochs=100, **adam)
  config.strategy.name = 'mal'
  mal = config.strategy.mal
  mal.train = common.train(epochs=100, **adam)
  mal.discriminator_train = common.optimizer('adam', 5e-4)
  if arg.imbalanced:
    config.dataset.imbalance.kind = 'random_ratios'
    config.initial_pool.size = 1_000
    config.budget = 1_000
  if arg.runlocal:
    common.runlocal(config)
    adam.update(learning_rate=2e-3, batch_size=64)
    config.train = common.train(epochs=15, lr_schedule='cosine', **adam)
    mal.train = common.train(epochs=15, lr_schedule='cosine', **adam)
  return config
