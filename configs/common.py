"""Pieces every config shares: variant parsing, the base config, the runlocal scale.

A config file starts from `base` (every key an experiment has, with neutral
values: the strategies' and the initial pools' own defaults included) and
sets its protocol's values in the open, so that opening the file shows them.
"""

from __future__ import annotations

import ml_collections

from jal import initial_pools, stopping, strategies
from jal.data import imbalance
from jal.errors import JalError
from jal.train.config import optimizer_config, train_config

# How a network is trained (optimiser, schedule, epochs, batch, augmentation),
# and the optimiser of a network trained alongside the task model.
train = train_config
optimizer = optimizer_config


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'runlocal,seed=3'`` into ``{'runlocal': True, 'seed': 3}`` over ``defaults``.

  Raises:
    JalError: for a variant the config does not define, or a value of the
      wrong type (booleans: true/false, yes/no, 1/0).
  """
  out = ml_collections.ConfigDict(defaults)
  booleans = {'1': True, 'true': True, 'yes': True, '0': False, 'false': False, 'no': False}
  for item in filter(None, (arg or '').split(',')):
    name, _, value = item.partition('=')
    if name not in defaults:
      raise JalError(f"unknown config variant '{name}'; this config accepts "
                     f"{', '.join(sorted(defaults))}")
    kind = type(defaults[name])
    if not value:
      out[name] = True
    elif kind is bool:
      if value.lower() not in booleans:
        raise JalError(f"config variant {name}={value!r} must be true or false")
      out[name] = booleans[value.lower()]
    else:
      try:
        out[name] = kind(value)
      except ValueError:
        raise JalError(f'config variant {name}={value!r} must be a {kind.__name__}') from None
  return out


def base() -> ml_collections.ConfigDict:
  """Every key an experiment config has, with neutral values.

  Sizes (``initial_pool.size``, ``budget``) are counts, or fractions of the
  train split when below 1.
  """
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = ml_collections.ConfigDict(dict(
      name='digits', image_size=ml_collections.FieldReference(None, field_type=int),
      path=ml_collections.FieldReference(None, field_type=str),
      max_train=ml_collections.FieldReference(None, field_type=int),
      max_test=ml_collections.FieldReference(None, field_type=int), split_seed=0,
      # A labeling project's classes (jal.data.project); empty: its folders'.
      classes=(),
      # Class imbalance of the train split (jal.data.imbalance); kind None: as loaded.
      imbalance=imbalance.imbalance_config()))
  # The labeled pool of round 0 (jal.initial_pools: random, or chosen by a
  # self-supervised network trained on the whole pool).
  config.initial_pool = initial_pools.default_config()
  config.budget = 0.05
  config.num_rounds = 5
  # Who answers the queries (jal.oracle): 'simulated' from the dataset's
  # labels, noise_rate of them wrong; or 'human', a person answering through
  # label files (jal.human), where skip_label takes an image out of the pool.
  config.oracle = ml_collections.ConfigDict(dict(name='simulated', noise_rate=0.0,
                                                 skip_label='skip'))
  # dtype: the compute dtype, 'float32' or 'bfloat16' (mixed precision with
  # float32 parameters).
  config.model = ml_collections.ConfigDict(dict(
      name='small_cnn', width=ml_collections.FieldReference(None, field_type=int),
      dtype='float32'))
  config.train = train()
  # False: each round's task model starts from the previous round's weights
  # (checkpointed, so a resumed run is still identical).
  config.retrain_from_scratch = True
  config.eval_batch_size = 500
  # The "subset method" of the SCAL and TA-VAAL papers: each round the strategy
  # scores only a random subset of this many unlabeled examples (e.g. 10x the
  # budget, or 10,000); None scores the whole unlabeled pool.
  config.candidate_subset = ml_collections.FieldReference(None, field_type=int)
  # Test-split metrics every round (jal.task, jal.metrics): the ECE's number
  # of equal-width confidence bins (SCAL Eq. 6). Optional: OOD AUROC of the
  # maximum softmax probability against a second dataset's test split
  # (ood_dataset, e.g. 'mnist'; at most ood_max_examples images, None: as
  # many as the test split) or against held-out classes (ood_classes,
  # removed from both splits, the others relabelled 0..K'-1); accuracy and
  # ECE on the test split under Gaussian blur of blur_severity (1..5) from
  # the blur_benchmark sigma table ('cifar-10-c' for small images,
  # 'imagenet-c' for large ones).
  config.evaluation = ml_collections.ConfigDict(dict(
      ece_bins=15, ood_dataset=ml_collections.FieldReference(None, field_type=str),
      ood_classes=(), ood_max_examples=ml_collections.FieldReference(None, field_type=int),
      blur_severity=ml_collections.FieldReference(None, field_type=int),
      blur_benchmark='cifar-10-c'))
  # The strategy's name and every strategy's own section (jal.strategies).
  config.strategy = strategies.default_config('random')
  # When to stop labeling (jal.stopping): each round records Cohen's kappa of
  # the task model's predictions on a fixed stop set of stop_set_size train
  # examples with the last round's, and the candidates' entropy; signals=False
  # skips the extra prediction pass.
  config.stopping = stopping.default_config()
  return config


def runlocal(config: ml_collections.ConfigDict) -> None:
  """The ``:runlocal`` scale of the paper configs, set in place.

  The real dataset shrunk to a stratified 10,000-image pool and a 2,000-image
  test split, 1,000 initial labels + 500 per round for 3 rounds, and a
  width-16 small CNN task model: minutes on 2 CPU cores.
  """
  config.dataset.max_train = 10_000
  config.dataset.max_test = 2_000
  config.initial_pool.size = 1_000
  config.budget = 500
  config.num_rounds = 3
  config.model.name = 'small_cnn'
  config.model.width = 16


def segmentation(config: ml_collections.ConfigDict, dataset: str) -> None:
  """Turns ``config`` into a semantic-segmentation experiment on ``dataset``, in place.

  Adds ``config.segmentation``: ``reduction``, how a strategy's per-pixel
  score becomes an image's (``'mean'``, the papers'; ``'max'``, ``'sum'``;
  `jal.task.SegmentationTask`), and ``biased_pool``, what
  ``initial_pool.exclude_classes`` leaves out of the initial pool
  (``'annotations'``: those classes' pixels become void, as PAL's App. A
  did on Cityscapes; ``'images'``: every image holding one; see
  `jal.experiment.initial_state`). Random flips move image and mask
  together; no random crop (the papers' segmentation runs use flips only).
  """
  config.dataset.name = dataset
  config.segmentation = ml_collections.ConfigDict(dict(reduction='mean',
                                                       biased_pool='annotations'))
  config.train.crop_pad = 0


def segmentation_runlocal(config: ml_collections.ConfigDict) -> None:
  """The ``:runlocal`` scale of the segmentation configs, set in place: CamVid.

  SegNet's CamVid (367 train, 233 test frames, 11 classes) from
  ``$JAL_DATA_DIR/camvid.zip``, resized to 64x64 (square, as MAL resizes
  BDD100K, so PAL's rotations apply), 30 initial labels + 30 per round for 3
  rounds, a width-16 small FCN trained 20 epochs with Adam: about a minute a
  run on 2 CPU cores.
  """
  segmentation(config, 'camvid')
  config.dataset.image_size = 64
  config.dataset.path = None
  config.dataset.classes = ()
  config.dataset.manual_dir = None
  config.initial_pool.size = 30
  config.budget = 30
  config.num_rounds = 3
  config.model.name = 'small_fcn'
  config.model.width = 16
  config.train = train(optimizer='adam', learning_rate=3e-3, weight_decay=0.0, momentum=0.0,
                       epochs=20, batch_size=8, crop_pad=0, lr_schedule='cosine')
  config.eval_batch_size = 32
  # Every strategy's own networks at the same scale.
  strategy = config.strategy
  strategy.mc_dropout.num_mc_samples = 10
  strategy.mc_dropout.mc_batch_size = 8
  strategy.learning_loss.width = 32
  strategy.vaal.vae.width = 16
  strategy.vaal.loss_prediction_width = 32
  strategy.mal.train = train(optimizer='adam', learning_rate=3e-3, weight_decay=0.0, momentum=0.0,
                             epochs=20, batch_size=8, crop_pad=0)
  strategy.mal.conv_discriminator_width = 16
  strategy.pal.num_subqueries = 3
  strategy.pal.scoring_model.name = 'small_fcn'
  strategy.pal.scoring_model.width = 8
  strategy.pal.scoring_train = train(optimizer='adam', learning_rate=3e-3, weight_decay=0.0,
                                     momentum=0.0, epochs=15, batch_size=8, crop_pad=0)
  strategy.pal.finetune = train(optimizer='adam', learning_rate=1e-3, weight_decay=0.0,
                                momentum=0.0, epochs=3, batch_size=8, crop_pad=0)
