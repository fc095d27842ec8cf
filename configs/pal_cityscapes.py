r"""PAL on Cityscapes segmentation with the paper's protocol (Bhatnagar et al. 2021, Sec. 4, Table 2).

  python -m jal.main --config configs/pal_cityscapes.py \
      --config.dataset.manual_dir=/data/cityscapes_zips --workdir runs/pal_cityscapes

Cityscapes (19 classes; 2,975 train frames are the pool, the 500 validation
frames the test split: the test split's labels are not public) through tfds,
which needs the two zips of the manual download (see `jal.data.cityscapes`).
DeepLabv3 on MobileNetV2 trained from scratch each round, SGD lr 0.01, 50
epochs, batch 8, for the task model and the scoring network (Table 2), which
PAL builds on the same network (its ResNet-18 is for classification);
lambda1 = 0.5, lambda2 = 0 (Table 2); 5% initial pool, +1% per round
(Sec. 4), measured by mIoU. S_C is per pixel, averaged per image (Sec. 3.2).

The frames are resized to 1024x1024: the rotation pretext task needs square
images, and the paper does not say how it rotated 2048x1024 frames (MAL
resizes BDD100K to a square the same way). The number of rounds is not
given: 5 (5% to 9%).

Variants (combinable):

  :biased     the bus (15) and train (16) annotations removed from the
              initial pool (App. A, Fig. 7)
  :runlocal   CamVid instead (`configs/camvid.py`'s :runlocal scale: 64x64,
              a small FCN, 3 rounds), about a minute on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/pal_cityscapes.py:runlocal --workdir runs/pal_camvid_local
"""

import ml_collections

from configs import common

BIASED_CLASSES = (15, 16)  # bus, train (Cityscapes trainIds)
CAMVID_BIASED_CLASSES = (9, 10)  # Pedestrian, Bicyclist


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False, biased=False)
  config = common.base()
  common.segmentation(config, 'cityscapes')
  config.dataset.image_size = 1024
  config.dataset.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.initial_pool.size = 0.05
  config.budget = 0.01
  config.num_rounds = 5
  config.model.name = 'mobilenet_v2'
  config.train = common.train(learning_rate=0.01, epochs=50, batch_size=8, crop_pad=0)
  config.eval_batch_size = 8
  config.strategy.name = 'pal'
  pal = config.strategy.pal
  pal.lambda1 = 0.5
  pal.lambda2 = 0.0
  pal.num_subqueries = 5
  pal.scoring_model.name = 'mobilenet_v2'
  pal.scoring_train = common.train(learning_rate=0.01, epochs=50, batch_size=8, crop_pad=0)
  pal.finetune = common.train(learning_rate=0.01, epochs=5, batch_size=8, crop_pad=0)
  if arg.biased:
    config.initial_pool.exclude_classes = BIASED_CLASSES
  if arg.runlocal:
    common.segmentation_runlocal(config)
    pal.lambda1 = 0.5
    pal.lambda2 = 0.0
    if arg.biased:
      config.initial_pool.exclude_classes = CAMVID_BIASED_CLASSES
  return config
