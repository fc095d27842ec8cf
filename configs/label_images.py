r"""Label your own images: a person answers each query (the human oracle).

  python -m jal.main --config configs/label_images.py \
      --config.dataset.path=PROJECT --workdir runs/my_labels

PROJECT is a folder with ``unlabeled/`` (the images to label, any depth and
size), optionally ``labeled/<class>/`` (labels you already have: round 0's
pool) and ``test/<class>/`` (a labeled test split, for test accuracy), or a
CSV manifest ``path,label[,split]`` (`jal.data.project`). Without
``labeled/``, round 0's pool is chosen by ``config.initial_pool.name``
(``random``, the default here; or ``kmeans``: one image per cluster of the
features of a rotation network trained on the whole pool first: for 7,869
Caltech-101 images at 64 px its 10 epochs had not finished after 22 minutes
on 2 CPU cores, so on a CPU lower ``config.initial_pool.ssl_train.epochs``
or use an accelerator) and is itself the first query. Give the
classes with ``--config.dataset.classes="('cat','dog')"`` when no folder
names them.

After each query the run stops and names ``DIR/queries/round_<r>/``:
fill in ``query.csv`` (or label ``tasks.json`` in Label Studio, or the images
in CVAT), then run the same command with ``--labels FILE``. ``skip`` (the
``config.oracle.skip_label``) takes an unusable image out of the pool.

Scale: images at 64x64, a width-32 small CNN trained for 30 epochs per
round, 20 images per query: minutes per round on a laptop CPU for a few
thousand images. ``:runlocal`` is a smoke test (16 px, 3 epochs, 3 rounds).
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  config.dataset.name = 'project'
  config.dataset.image_size = 64
  config.oracle.name = 'human'
  config.initial_pool.name = 'random'
  config.initial_pool.size = 20
  config.initial_pool.ssl_model.name = 'small_cnn'
  config.initial_pool.ssl_model.width = 16
  config.initial_pool.ssl_train = common.train(learning_rate=0.05, epochs=10, batch_size=64,
                                               lr_schedule='cosine')
  config.budget = 20
  config.num_rounds = 10
  config.model.name = 'small_cnn'
  config.model.width = 32
  config.train = common.train(learning_rate=0.05, epochs=30, batch_size=32, crop_pad=4,
                              lr_schedule='cosine')
  config.eval_batch_size = 256
  config.strategy.name = 'margin'
  if arg.runlocal:
    config.dataset.image_size = 16
    config.model.width = 8
    config.train.epochs = 3
    config.initial_pool.ssl_model.width = 4
    config.initial_pool.ssl_train.epochs = 1
    config.initial_pool.size = 6
    config.budget = 4
    config.num_rounds = 3
  return config
