r"""TA-VAAL (Kim et al. 2021) on CIFAR-10 with the paper's protocol (Sec. 4.2 and 4.3).

  python -m jal.main --config configs/tavaal_cifar10.py --workdir runs/tavaal_cifar10

1,000 initial, +1,000 per round up to 10,000 (TA-VAAL, Kim et al. 2021, Sec.
4.2), ResNet-18, SGD 0.1 (x0.1 at epoch 160 of 200), momentum 0.9, weight
decay 5e-3 (the paper's "0.005"; its public code uses 5e-4), batch 128,
32x32 crops of 36x36 zero-padded images and flips; VAE and discriminator
Adam 5e-4; each query from a random subset of 10,000 (10x the budget).
The discriminator is the paper's 5-layer MLP (four hidden layers of 512);
the ranker is updated for the first 80% of the epochs. Compare with
``python -m jal.compare ... --strategies=random,vaal,tavaal``.

Variants (combinable):

  :x10, :x100 TA-VAAL's imbalanced CIFAR-10 (Sec. 4.3): the first five classes of
              the train split keep a tenth or a hundredth of their images, drawn
              at random per seed; the test split stays balanced

  :runlocal   real CIFAR-10 (JPEG copy), shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/tavaal_cifar10.py:runlocal --workdir runs/tavaal_cifar10_local
"""

from configs import common
from jal.errors import JalError


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False, x10=False, x100=False)
  if arg.x10 and arg.x100:
    raise JalError('choose one of the variants x10 and x100, not both')
  config = common.base()
  config.dataset.name = 'cifar10'
  config.initial_pool.size = 1_000
  config.budget = 1_000
  config.num_rounds = 10
  config.candidate_subset = 10_000
  config.model.name = 'resnet18'
  config.train = common.train(learning_rate=0.1, momentum=0.9, weight_decay=5e-3, epochs=200,
                              batch_size=128, crop_pad=2, lr_schedule='multistep',
                              lr_milestones=(0.8,))
  config.strategy.name = 'tavaal'
  vaal = config.strategy.vaal
  vaal.vae_train = common.optimizer('adam', 5e-4)
  vaal.discriminator_train = common.optimizer('adam', 5e-4)
  vaal.discriminator.num_hidden = 4
  if arg.x10 or arg.x100:
    config.dataset.imbalance.kind = 'step'
    config.dataset.imbalance.classes = (0, 1, 2, 3, 4)
    config.dataset.imbalance.factor = 100.0 if arg.x100 else 10.0
  if arg.runlocal:
    common.runlocal(config)
    config.candidate_subset = 5_000
    config.train = common.train(learning_rate=0.05, epochs=15, batch_size=64,
                                lr_schedule='cosine')
    vaal.vae.width = 16
    vaal.loss_prediction_width = 32
    config.strategy.learning_loss.width = 32
  return config
