r"""Segment your own images: a person answers each query with masks (the human oracle).

  python -m jal.main --config configs/label_masks.py --config.dataset.path=PROJECT \
      --config.dataset.classes="('road','car','person')" --workdir runs/my_masks

PROJECT is a folder with ``unlabeled/`` (the images to segment, any depth
and size) and optionally ``test/images/`` with ``test/masks/<stem>.png``
(a test split, for test mIoU); the classes, in mask-value order, are
``config.dataset.classes`` (255 is void). Round 0's pool is a random query
like every other (`jal.data.project`).

After each query the run stops and names ``DIR/queries/round_<r>/``: paint
the listed images' masks in Label Studio (import ``tasks.json``, whose
brush interface is ``label_config.xml``) or CVAT, or as PNGs of class
indices, then run the same command with ``--labels`` and the Label Studio
JSON export, CVAT's "Segmentation mask 1.1" zip or the folder of
``<stem>.png`` masks (`jal.human.mask_files`). Unpainted pixels are void;
images without a mask stay queued.

Scale: images at 128x128, a width-16 small FCN trained for 30 epochs per
round, the mean pixel entropy as the acquisition function, 10 images per
query. ``:runlocal`` is a smoke test (32 px, 3 epochs, 3 rounds).
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  common.segmentation(config, 'project')
  config.dataset.image_size = 128
  config.oracle.name = 'human'
  config.initial_pool.size = 10
  config.budget = 10
  config.num_rounds = 10
  config.model.name = 'small_fcn'
  config.model.width = 16
  config.train = common.train(optimizer='adam', learning_rate=3e-3, weight_decay=0.0,
                              momentum=0.0, epochs=30, batch_size=8, crop_pad=0)
  config.eval_batch_size = 32
  config.strategy.name = 'entropy'
  if arg.runlocal:
    config.dataset.image_size = 32
    config.model.width = 4
    config.train.epochs = 3
    config.initial_pool.size = 4
    config.budget = 3
    config.num_rounds = 3
  return config
