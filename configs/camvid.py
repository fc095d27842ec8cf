r"""Semantic segmentation on CamVid (SegNet's 11-class version) with any strategy.

  JAL_DATA_DIR=../shared/data python -m jal.main --config configs/camvid.py \
      --workdir runs/camvid --config.strategy.name=entropy

CamVid road scenes (Brostow et al. 2008): 367 train frames (the pool) and
233 test frames at 360x480, 11 classes and void, read from
``$JAL_DATA_DIR/camvid.zip``. At full size: DeepLabv3 on MobileNetV2 (PAL's
segmentation network), SGD lr 0.01, 50 epochs, batch 8 (PAL's Cityscapes
settings, Table 2), 5% initial pool (18 frames) + 5% per round for 5 rounds;
measured by mIoU over the 11 classes, void ignored. Every strategy that
applies to segmentation runs on it (`jal.strategies`); the others refuse in
one line.

Variants:

  :runlocal   64x64 frames, a small FCN, 30 + 30 per round for 3 rounds, 20
              epochs: about a minute per run on 2 CPU cores
  :biased     the Pedestrian (9) and Bicyclist (10) annotations removed from
              the initial pool (void pixels: PAL's biased pool on
              Cityscapes, App. A; ``--config.segmentation.biased_pool=images``
              keeps frames holding them out instead); the pixel-area plot of
              `jal.compare` shows who finds them (Fig. 7)

  JAL_DATA_DIR=../shared/data python -m jal.compare \
      --config configs/camvid.py:runlocal,biased \
      --strategies=random,entropy,pal,mal --seeds=0,1,2 --workdir runs/camvid_biased
"""

import ml_collections

from configs import common

# Classes kept out of the biased initial pool: Pedestrian and Bicyclist.
BIASED_CLASSES = (9, 10)


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False, biased=False)
  config = common.base()
  common.segmentation(config, 'camvid')
  config.dataset.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.initial_pool.size = 0.05
  config.budget = 0.05
  config.num_rounds = 5
  config.model.name = 'mobilenet_v2'
  config.train = common.train(learning_rate=0.01, epochs=50, batch_size=8, crop_pad=0)
  config.eval_batch_size = 8
  if arg.biased:
    config.initial_pool.exclude_classes = BIASED_CLASSES
  if arg.runlocal:
    common.segmentation_runlocal(config)
  return config
