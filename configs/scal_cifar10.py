r"""SCAL (Krishnan et al. 2021) on CIFAR-10 with the paper's protocol.

  python -m jal.main --config configs/scal_cifar10.py --workdir runs/scal_cifar10

SCAL's protocol (Krishnan et al. 2021, Sec. 4.1 and App. A.2): no labels at
first, so round 0 trains on 1,000 random labels; +1,000 per round for 10
rounds, each query from a random subset of 10,000 unlabeled images;
ResNet-18, SGD 0.1, momentum 0.9, weight decay 5e-4, 200 epochs, x0.1 at
epoch 160, for every strategy. The paper gives neither the batch size nor
the augmentation: batch 128, 4-pixel crops (and flips where the dataset
allows). Every round records accuracy, per-class accuracy, ECE (15 bins),
Brier, NLL and the labeled pool's sampling bias.
Also the OOD AUROC against SVHN, and accuracy and ECE under Gaussian blur
(Fig. 4; CIFAR-10-C's sigma table, severity 3: the paper gives none).
The paper's comparisons run on the same protocol with
``--config.strategy.name=featuresim`` (or ``dfm``, ``random``, ``entropy``,
``coreset``, ``bald``, ``learning_loss``).

  :runlocal   real CIFAR-10 (JPEG copy), shrunk to run in minutes on 2 CPU
              cores, OOD against MNIST:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/scal_cifar10.py:runlocal --workdir runs/scal_cifar10_local
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  config.dataset.name = 'cifar10'
  config.initial_pool.size = 1_000
  config.budget = 1_000
  config.num_rounds = 10
  config.candidate_subset = 10_000
  config.model.name = 'resnet18'
  config.train = common.train(learning_rate=0.1, momentum=0.9, weight_decay=5e-4, epochs=200,
                              batch_size=128, crop_pad=4, lr_schedule='multistep',
                              lr_milestones=(0.8,))
  config.strategy.name = 'scal'
  config.strategy.scal.temperature = 0.07
  # Fig. 4: OOD against SVHN, and the blur shift.
  config.evaluation.ood_dataset = 'svhn_cropped'
  config.evaluation.blur_severity = 3
  if arg.runlocal:
    common.runlocal(config)
    config.candidate_subset = 5_000
    config.train = common.train(learning_rate=0.05, epochs=15, batch_size=64, crop_pad=4,
                                lr_schedule='cosine')
    config.evaluation.ood_dataset = 'mnist'  # offline here, unlike SVHN
  return config
