r"""MAL on BDD100K segmentation with the paper's protocol (Ebrahimi et al. 2020, Sec. 3.2, 4.2).

  python -m jal.main --config configs/mal_bdd100k.py \
      --config.dataset.path=/data/bdd100k_seg --workdir runs/mal_bdd100k

BDD100K's segmentation frames (19 classes, Cityscapes' trainIds) as an
image-and-mask folder: ``train/images``, ``train/masks`` (the 7,000 train
frames) and ``test/images``, ``test/masks`` (BDD100K's 1,000 validation
frames), masks as ``<stem>.png`` of trainIds with 255 for void (BDD100K's
``labels/sem_seg/masks`` are already that). Resized to 224x224 (masks by
nearest neighbour), random flips; 5% initial (350), +5% per round up to 20%
(1,400; Fig. 4: 4 rounds); F a DRN (DRN-D-22, Yu et al. 2017), C its
prototypes as a 1x1 convolution with upsampling, D a 3-layer CNN with a
small fully connected layer (Sec. 4.2); Adam for all. Learning rates,
batch size and epochs are not given: Adam 5e-4, batch 8, 100 epochs (the
classification protocol's, batch 8 for 224x224 masks).

Variants:

  :runlocal   CamVid instead (`configs/camvid.py`'s :runlocal scale), about a
              minute on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/mal_bdd100k.py:runlocal --workdir runs/mal_camvid_local
"""

from configs import common
from jal.data.cityscapes import CITYSCAPES_CLASSES


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  common.segmentation(config, 'mask_folder')
  config.dataset.classes = CITYSCAPES_CLASSES
  config.dataset.image_size = 224
  config.initial_pool.size = 0.05
  config.budget = 0.05
  config.num_rounds = 4
  config.model.name = 'drn_d_22'
  adam = dict(optimizer='adam', learning_rate=5e-4, momentum=0.0, weight_decay=0.0,
              batch_size=8, crop_pad=0)
  config.train = common.train(epochs=100, **adam)
  config.eval_batch_size = 16
  config.strategy.name = 'mal'
  mal = config.strategy.mal
  mal.train = common.train(epochs=100, **adam)
  mal.discriminator_train = common.optimizer('adam', 5e-4)
  if arg.runlocal:
    common.segmentation_runlocal(config)
  return config
