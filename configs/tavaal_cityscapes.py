r"""TA-VAAL on Cityscapes segmentation with the paper's protocol (Kim et al. 2021, Sec. 4.4).

  python -m jal.main --config configs/tavaal_cityscapes.py \
      --config.dataset.manual_dir=/data/cityscapes_zips --workdir runs/tavaal_cityscapes

Cityscapes with 19 classes (train frames the pool, validation frames the
test split), 200 initial frames + 200 per stage, random flips; the task
learner a DRN (DRN-D-22, Yu et al. 2017) with SGD lr 1e-3; the
rank-conditioned VAE and a 5-layer MLP discriminator (four hidden layers)
with Adam 1e-4; batch 4, 100 epochs. The paper gives neither the number of
stages nor the image size: 5 stages (200 to 1,000) at the full 1024x2048.

Variants:

  :runlocal   CamVid instead (`configs/camvid.py`'s :runlocal scale), about a
              minute on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/tavaal_cityscapes.py:runlocal --workdir runs/tavaal_camvid_local
"""

import ml_collections

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  common.segmentation(config, 'cityscapes')
  config.dataset.manual_dir = ml_collections.FieldReference(None, field_type=str)
  config.initial_pool.size = 200
  config.budget = 200
  config.num_rounds = 5
  config.model.name = 'drn_d_22'
  config.train = common.train(learning_rate=1e-3, epochs=100, batch_size=4, crop_pad=0)
  config.eval_batch_size = 4
  config.strategy.name = 'tavaal'
  vaal = config.strategy.vaal
  vaal.vae_train = common.optimizer('adam', 1e-4)
  vaal.discriminator_train = common.optimizer('adam', 1e-4)
  vaal.discriminator.num_hidden = 4
  if arg.runlocal:
    common.segmentation_runlocal(config)
  return config
