r"""PAL on scikit-learn's 8x8 handwritten digits: the embedded default.

The digits ship inside scikit-learn, so this runs anywhere, offline, in about
a minute on a laptop CPU:

  python -m jal.main --config configs/digits.py --workdir runs/digits_pal

PAL's protocol scaled to the dataset (1,437 train / 360 test images): 10%
initial pool, +5% per round up to 30%, task model and scoring network small
CNNs. ``:runlocal`` is even smaller (3 rounds, fewer epochs).
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  config.dataset.name = 'digits'
  config.initial_pool.size = 0.1
  config.budget = 0.05
  config.num_rounds = 5
  config.model.name = 'small_cnn'
  config.model.width = 16
  config.train = common.train(learning_rate=0.05, epochs=30, batch_size=32, crop_pad=1,
                              lr_schedule='cosine')
  config.eval_batch_size = 256
  config.strategy.name = 'pal'
  pal = config.strategy.pal
  pal.num_subqueries = 3
  pal.scoring_model.name = 'small_cnn'
  pal.scoring_model.width = 16
  pal.scoring_train = common.train(learning_rate=0.05, epochs=30, batch_size=32, crop_pad=1,
                                   lr_schedule='cosine')
  pal.finetune = common.train(learning_rate=0.01, epochs=5, batch_size=32, crop_pad=1)
  if arg.runlocal:
    config.num_rounds = 3
    config.train.epochs = 15
    pal.scoring_train.epochs = 15
    pal.finetune.epochs = 3
  return config
