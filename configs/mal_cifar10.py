r"""MAL (Ebrahimi et al. 2020) on CIFAR-10 with the paper's CIFAR-100 protocol.

  python -m jal.main --config configs/mal_cifar10.py --workdir runs/mal_cifar10

MAL's CIFAR-100 protocol (Ebrahimi et al. 2020, Sec. 4.1 and App. B): 2%
initial, +2% per round up to 10% (5 rounds), ResNet-18 (Xavier
initialisation in the paper; jal's ResNet-18 keeps its He init), horizontal
flips only, Adam for F, C and D, 100 epochs of the minimax game, then the
task model from F (Algorithm 3). The paper gives neither the learning
rates, the batch size, nor how the task model of Algorithm 3 is optimised:
Adam 5e-4 (VAAL's, by the same group), batch 128 and 100 epochs for all.
CIFAR-10 is offline here as a JPEG copy (``JAL_DATA_DIR=../shared/data``).

Variants (combinable):

  :runlocal   shrunk to run in minutes on 2 CPU cores (1,000 + 500 per round
              for 3 rounds, a width-16 small CNN, 15 epochs of each training):
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/mal_cifar10.py:runlocal --workdir runs/mal_cifar10_local
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  config.dataset.name = 'cifar10'
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
  if arg.runlocal:
    common.runlocal(config)
    adam.update(learning_rate=2e-3, batch_size=64)
    config.train = common.train(epochs=15, lr_schedule='cosine', **adam)
    mal.train = common.train(epochs=15, lr_schedule='cosine', **adam)
  return config
