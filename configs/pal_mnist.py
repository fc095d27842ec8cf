r"""PAL (Bhatnagar et al. 2021) on MNIST, with the protocol of its other datasets.

  python -m jal.main --config configs/pal_mnist.py --workdir runs/pal_mnist

The paper has no MNIST run; this is its CIFAR-10 and SVHN protocol: 10%
initial pool, +5% per round up to 30%, VGG-16 task model, ResNet-18 scoring
network, SGD lr 0.01, 100 epochs, batch 64, lambda1 = lambda2 = 1, K = 5
sub-queries; no flips (digits). MNIST is offline here
(``JAL_DATA_DIR=../shared/data``).

Variants (combinable, e.g. ``:biased,runlocal``):

  :noisy      20% of the oracle's labels (initial pool and queries) wrong,
              uniformly among the other classes (Sec. 4.2)
  :biased     classes 0 and 1 absent from the initial pool (Sec. 4.3); the
              class-count plot of `jal.compare` shows who finds them (Fig. 3)
  :runlocal   real MNIST, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/pal_mnist.py:runlocal --workdir runs/pal_mnist_local
  :dbal       BALD on the MNIST network of Gal, Islam & Ghahramani 2017 (Sec.
              5.1; ``dbal_cnn``, 32 kernels) as the task model, sampled at its
              own dropout layers (0.25, 0.5); PAL's own networks are unchanged,
              and any other strategy may be chosen (``--config.strategy.name``).
              ``:runlocal,dbal`` at the runlocal scale:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/pal_mnist.py:runlocal,dbal --workdir runs/bald_mnist_local

Compare against baselines on the same initial pools:

  JAL_DATA_DIR=../shared/data python -m jal.compare --config configs/pal_mnist.py:runlocal \
      --strategies=random,entropy,pal --seeds=0,1,2 --workdir runs/pal_mnist_compare
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False, noisy=False, biased=False, dbal=False)
  config = common.base()
  config.dataset.name = 'mnist'
  # 10% initial pool, +5% per round up to 30%.
  config.initial_pool.size = 0.1
  config.budget = 0.05
  config.num_rounds = 5
  # Task model VGG-16, SGD lr 0.01 (momentum 0.9 and weight decay 5e-4 of
  # the VAAL code base PAL follows), 100 epochs, batch 64.
  config.model.name = 'vgg16'
  config.train = common.train(learning_rate=0.01, epochs=100, batch_size=64)
  # PAL: lambda1 = lambda2 = 1; a ResNet-18 scoring network trained like the
  # task model; K sub-queries and the fine-tuning of g' are not given: 5
  # and 5 epochs.
  config.strategy.name = 'pal'
  pal = config.strategy.pal
  pal.lambda1 = 1.0
  pal.lambda2 = 1.0
  pal.num_subqueries = 5
  pal.scoring_model.name = 'resnet18'
  pal.scoring_train = common.train(learning_rate=0.01, epochs=100, batch_size=64)
  pal.finetune = common.train(learning_rate=0.01, epochs=5, batch_size=64)
  if arg.noisy:
    config.oracle.noise_rate = 0.2
  if arg.biased:
    config.initial_pool.exclude_classes = (0, 1)
  if arg.runlocal:
    common.runlocal(config)
    config.train = common.train(learning_rate=0.05, epochs=15, batch_size=64,
                                lr_schedule='cosine')
    pal.num_subqueries = 3
    pal.scoring_model.width = 8
    pal.scoring_train = common.train(learning_rate=0.05, epochs=10, batch_size=64,
                                     lr_schedule='cosine')
    pal.finetune = common.train(learning_rate=0.01, epochs=3, batch_size=64)
  if arg.dbal:
    config.model.name = 'dbal_cnn'
    config.model.width = None  # the paper's 32 kernels
    config.strategy.name = 'bald'
  return config
