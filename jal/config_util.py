"""Helpers for config files: variant parsing and the keys every config has.

Config files follow big_vision: ``get_config(arg=None)`` returns an
``ml_collections.ConfigDict``; variants come after a colon
(``--config configs/pal_cifar10.py:runlocal``), several separated by commas,
``key=value`` pairs allowed; single keys override with ``--config.a.b=value``.
"""

from __future__ import annotations

import ml_collections

from jal.data import imbalance
from jal.errors import JalError


def parse_arg(arg: str | None, **defaults) -> ml_collections.ConfigDict:
  """Parses ``'runlocal,seed=3'`` into ``{'runlocal': True, 'seed': 3}`` over ``defaults``.

  Raises:
    JalError: for a variant the config does not define.
  """
  out = ml_collections.ConfigDict(defaults)
  for item in filter(None, (arg or '').split(',')):
    name, _, value = item.partition('=')
    if name not in defaults:
      raise JalError(f"unknown config variant '{name}'; this config accepts "
                     f"{', '.join(sorted(defaults))}")
    kind = type(defaults[name])
    if not value:
      out[name] = True
    elif kind is bool:
      out[name] = value.lower() in ('1', 'true', 'yes')
    else:
      out[name] = kind(value)
  return out


def train_config(**overrides) -> ml_collections.ConfigDict:
  """Training hyperparameters of a network (task model or auxiliary)."""
  cfg = ml_collections.ConfigDict(dict(
      optimizer='sgd', learning_rate=0.1, momentum=0.9, weight_decay=5e-4,
      lr_schedule='constant', lr_milestones=(), lr_decay=0.1,
      epochs=100, batch_size=64, crop_pad=4, flip=True,
      # None: one compiled loop per epoch on GPU/TPU, a host loop of compiled
      # steps on CPU (see jal.training.Trainer).
      compiled_epochs=None))
  cfg.update(overrides)
  return cfg


def base_config() -> ml_collections.ConfigDict:
  """Every key an experiment config has, with neutral defaults."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.dataset = ml_collections.ConfigDict(dict(
      name='digits', image_size=ml_collections.FieldReference(None, field_type=int),
      path=ml_collections.FieldReference(None, field_type=str),
      max_train=ml_collections.FieldReference(None, field_type=int),
      max_test=ml_collections.FieldReference(None, field_type=int), split_seed=0,
      # Class imbalance of the train split (TA-VAAL's step, MAL's random
      # ratios, Cui et al.'s long tail); kind None: as loaded.
      imbalance=imbalance.imbalance_config()))
  # Sizes are counts, or fractions of the train split when below 1.
  # The initial labeled pool: random, or paper 001's self-supervised choices
  # (jal.initial_pools; --config.initial_pool.name=kmeans, ...).
  from jal import initial_pools  # pylint: disable=g-import-not-at-top
  config.initial_pool = initial_pools.initial_pool_config()
  config.budget = 0.05
  config.num_rounds = 5
  config.oracle = ml_collections.ConfigDict(dict(noise_rate=0.0))
  # dtype: the compute dtype, 'float32' or 'bfloat16' (mixed precision with
  # float32 parameters).
  config.model = ml_collections.ConfigDict(dict(
      name='small_cnn', width=ml_collections.FieldReference(None, field_type=int),
      dtype='float32'))
  config.train = train_config()
  # False: each round's task model starts from the previous round's weights
  # (checkpointed, so a resumed run is still identical).
  config.retrain_from_scratch = True
  config.eval_batch_size = 500
  # The "subset method" (papers 002 and 004): each round the strategy scores
  # only a random subset of this many unlabeled examples (e.g. 10x the budget,
  # or 10,000); None scores the whole unlabeled pool.
  config.candidate_subset = ml_collections.FieldReference(None, field_type=int)
  # Test-split metrics every round (jal.metrics, jal.experiment.evaluate):
  # the ECE's number of equal-width confidence bins (SCAL Eq. 6). Optional:
  # OOD AUROC of the maximum softmax probability against a second dataset's
  # test split (ood_dataset, e.g. 'mnist'; at most ood_max_examples images,
  # None: as many as the test split) or against held-out classes
  # (ood_classes, removed from both splits, the others relabelled 0..K'-1);
  # accuracy and ECE on the test split under Gaussian blur of blur_severity
  # (1..5) from the blur_benchmark sigma table ('cifar-10-c' for small
  # images, 'imagenet-c' for large ones).
  config.evaluation = ml_collections.ConfigDict(dict(
      ece_bins=15, ood_dataset=ml_collections.FieldReference(None, field_type=str),
      ood_classes=(), ood_max_examples=ml_collections.FieldReference(None, field_type=int),
      blur_severity=ml_collections.FieldReference(None, field_type=int),
      blur_benchmark='cifar-10-c'))
  config.strategy = strategy_config('random')
  return config


def strategy_config(name: str, **overrides) -> ml_collections.ConfigDict:
  """``config.strategy``: the name and the hyperparameters of the baselines.

  Every config carries every baseline's keys, so that any strategy can be
  picked with ``--config.strategy.name=NAME`` and tuned with
  ``--config.strategy.KEY=VALUE`` on any dataset config.
  """
  cfg = ml_collections.ConfigDict(dict(
      name=name,
      # BALD / DBAL with MC dropout (Gal et al. 2017), in the SCAL paper's
      # setting (paper 002, App. A.3): p = 0.3 after the convolutions of the
      # ResNet blocks, T = 50 stochastic passes; mc_batch_size images per
      # compiled call (each is run T times, so memory grows as T x this).
      dropout_rate=0.3, num_mc_samples=50, mc_batch_size=64,
      # Ensembles (Beluch et al. 2018): M members trained together.
      num_members=3,
      # Learning Loss (Yoo & Kweon 2019): loss prediction module of width
      # 128, ranking loss weight 1 and margin xi = 1, no gradient from it into
      # the backbone after 60% of the epochs (epoch 120 of 200).
      loss_prediction_width=128, ranking_weight=1.0, ranking_margin=1.0, detach_after=0.6,
      # VAAL (Sinha et al. 2019) and TA-VAAL (paper 004): the reference
      # code's beta-VAE (z 32, width 128) and discriminator (2 hidden layers
      # of 512; TA-VAAL's paper reports a 5-layer MLP: num_hidden=4), both
      # trained with Adam 5e-4 alongside the task model (their epochs). beta
      # weighs the per-example KL; the reference code sums the KL over the
      # batch, i.e. beta = batch size here. TA-VAAL's ranker is updated for
      # the first ranker_epochs of the epochs (Algorithm 1: 80%), with eta =
      # ranking_weight. query_batch_statistics: the query runs the VAE's (and
      # MAL's F's) batch norm on each scoring batch's own statistics, as D
      # saw them in training (VAAL's reference never calls vae.eval()).
      vae=dict(z_dim=32, width=128, dtype='float32'),
      vae_train=optimizer_config('adam', 5e-4),
      discriminator=dict(width=512, num_hidden=2),
      discriminator_train=optimizer_config('adam', 5e-4),
      beta=1.0, adversary_weight=1.0, ranker_epochs=0.8, query_batch_statistics=True,
      # MAL (paper 003): cosine classifier C with temperature T (MME's 0.05)
      # on a hidden layer of 256 (App. B's parameter count), entropy weight
      # lambda (MME's 0.1), discriminator width 512; F, C and D trained for
      # mal_train.epochs with Adam, then the task model from F (Algorithm 3).
      # mal_selection: 'both' (Algorithm 2), 'discriminator' or 'entropy'
      # (the ablations of Fig. 5).
      temperature=0.05, classifier_hidden=256, entropy_weight=0.1, mal_discriminator_width=512,
      mal_train=train_config(optimizer='adam', learning_rate=5e-4, weight_decay=0.0,
                             momentum=0.0, epochs=100, batch_size=128),
      mal_discriminator_train=optimizer_config('adam', 5e-4),
      mal_selection='both',
      # SCAL (paper 002): supervised contrastive loss at temperature 0.07 on a
      # projection head (Dense(hidden) -> ReLU -> Dense(128), hidden None: the
      # feature width), then a linear classifier on the frozen features,
      # trained as Khosla et al.'s main_linear.py does (the paper gives no
      # settings): SGD 0.1, momentum 0.9, no weight decay, 14 epochs, x0.2 at
      # epochs 8, 11 and 13; batch size and augmentation of config.train.
      contrastive_temperature=0.07, projection_dim=128,
      projection_hidden=ml_collections.FieldReference(None, field_type=int),
      scal_classifier_train=optimizer_config(
          'sgd', 0.1, momentum=0.9, lr_schedule='multistep',
          lr_milestones=(8 / 14, 11 / 14, 13 / 14), lr_decay=0.2, epochs=14),
      # DFM (paper 002, Sec. 3.2): principal components kept per class (the
      # paper gives no number; capped at each class's rank).
      dfm_components=16,
      # PAL (paper 000): lambda1 = lambda2 = 1, K sub-queries, a ResNet-18
      # scoring network trained on the labeled pool, its copy g' fine-tuned on
      # each sub-query (the whole network, or finetune_scope='head').
      lambda1=1.0, lambda2=1.0, num_subqueries=5, finetune_scope='network',
      scoring_model=dict(name='resnet18', dtype='float32',
                         width=ml_collections.FieldReference(None, field_type=int)),
      scoring_train=train_config(learning_rate=0.01, lr_schedule='constant'),
      finetune=train_config(learning_rate=0.01, epochs=5, lr_schedule='constant')))
  cfg.update(overrides)
  return cfg


def optimizer_config(optimizer: str, learning_rate: float, **overrides) -> ml_collections.ConfigDict:
  """The optimiser of a network trained alongside the task model, over its epochs.

  ``lr_schedule`` (``'constant'``, ``'multistep'``, ``'cosine'``) is then in
  the task model's epochs (`jal.optim.learning_rate`).
  """
  cfg = ml_collections.ConfigDict(dict(optimizer=optimizer, learning_rate=learning_rate,
                                       weight_decay=0.0, momentum=0.0, lr_schedule='constant',
                                       lr_milestones=(), lr_decay=0.1))
  cfg.update(overrides)
  return cfg


def pal_strategy(**overrides) -> ml_collections.ConfigDict:
  """PAL's hyperparameters (paper 000): lambda1 = lambda2 = 1, ResNet-18 scorer.

  ``strategy_config('pal', **overrides)``: every config carries PAL's keys.
  """
  return strategy_config('pal', **overrides)


def runlocal_sizes(config: ml_collections.ConfigDict) -> None:
  """The ``:runlocal`` scale shared by the paper configs, set in place.

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


def pal_protocol(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """PAL's classification protocol (paper 000, Sec. 4 and Table 2).

  10% initial pool, +5% per round up to 30% (5 rounds), task model VGG-16,
  scoring network ResNet-18, SGD lr 0.01 (momentum 0.9, weight decay 5e-4: the
  VAAL code base PAL follows), 100 epochs, batch 64, lambda1 = lambda2 = 1.
  The paper does not give K or the fine-tuning epochs of g': jal uses K = 5
  and 5 epochs (lr 0.01).

  Variants in ``arg``: ``noisy`` (20% of the oracle's labels wrong, Sec.
  4.2), ``biased`` (classes 0 and 1 absent from the initial pool, Sec. 4.3),
  and ``runlocal``, which keeps the real dataset but shrinks it to a 10,000-image pool
  (stratified) and a 2,000-image test split, 1,000 initial + 500 per round for
  3 rounds, a small CNN task model, a width-8 ResNet-18 scorer, and fewer
  epochs, so a round takes about a minute on 2 CPU cores.
  """
  arg = parse_arg(arg, runlocal=False, noisy=False, biased=False)
  config = base_config()
  config.dataset.name = dataset
  config.initial_pool.size = 0.1
  config.budget = 0.05
  config.num_rounds = 5
  config.model.name = 'vgg16'
  config.train = train_config(learning_rate=0.01, epochs=100, batch_size=64)
  config.strategy = pal_strategy()
  if arg.noisy:
    config.oracle.noise_rate = 0.2
  if arg.biased:
    config.initial_pool.exclude_classes = (0, 1)
  if arg.runlocal:
    runlocal_sizes(config)
    config.train = train_config(learning_rate=0.05, epochs=15, batch_size=64,
                                lr_schedule='cosine')
    config.strategy = pal_strategy(
        num_subqueries=3, scoring_model=dict(name='resnet18', width=8),
        scoring_train=train_config(learning_rate=0.05, epochs=10, batch_size=64,
                                   lr_schedule='cosine'),
        finetune=train_config(learning_rate=0.01, epochs=3, batch_size=64))
  return config


def adversarial_protocol(method: str, dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """VAAL's and TA-VAAL's CIFAR protocol (paper 004, Sec. 4.2).

  1,000 initial, +1,000 per round up to 10,000 (10 rounds), ResNet-18, SGD lr
  0.1 (x0.1 at epoch 160 of 200), momentum 0.9, weight decay 5e-3 (the
  paper's "0.005"; its public code uses 5e-4), batch 128, 32x32 crops of
  36x36 zero-padded images and flips; VAE and discriminator Adam 5e-4;
  queries from a random subset 10x the budget. TA-VAAL's discriminator is the
  paper's 5-layer MLP (4 hidden layers), VAAL's the 3-layer one of its code.

  ``runlocal`` keeps the real dataset but shrinks it to a 10,000-image pool
  and a 2,000-image test split, 1,000 initial + 500 per round for 3 rounds, a
  width-16 small CNN, 15 epochs (cosine), a width-16 VAE: minutes on 2 CPU cores.
  """
  arg = parse_arg(arg, runlocal=False)
  config = base_config()
  config.dataset.name = dataset
  config.initial_pool.size = 1_000
  config.budget = 1_000
  config.num_rounds = 10
  config.candidate_subset = 10_000
  config.model.name = 'resnet18'
  config.train = train_config(learning_rate=0.1, momentum=0.9, weight_decay=5e-3, epochs=200,
                              batch_size=128, crop_pad=2, lr_schedule='multistep',
                              lr_milestones=(0.8,))
  config.strategy = strategy_config(method)
  config.strategy.discriminator.num_hidden = 4 if method == 'tavaal' else 2
  if arg.runlocal:
    runlocal_sizes(config)
    config.candidate_subset = 5_000
    config.train = train_config(learning_rate=0.05, epochs=15, batch_size=64,
                                lr_schedule='cosine')
    config.strategy.vae.width = 16
    config.strategy.loss_prediction_width = 32
  return config


def mal_protocol(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """MAL's CIFAR-100 protocol (paper 003, Sec. 4.1), for any dataset.

  2% initial, +2% per round up to 10% (5 rounds: App. B, Table 2), ResNet-18
  with Xavier initialisation in the paper (jal's ResNet-18 keeps its He
  init), horizontal flips only, Adam for F, C and D, 100 epochs of MAL
  training. The paper gives neither the learning rates, the batch size, nor
  how the task model of Algorithm 3 is optimised: jal uses Adam 5e-4 (VAAL's,
  by the same group) and batch 128 for all, and 100 epochs for the task model.

  ``runlocal``: a 10,000-image pool (stratified) and a 2,000-image test
  split, 1,000 initial + 500 per round for 3 rounds, a width-16 small CNN, 15
  epochs of each training: minutes on 2 CPU cores.
  """
  arg = parse_arg(arg, runlocal=False)
  config = base_config()
  config.dataset.name = dataset
  config.initial_pool.size = 0.02
  config.budget = 0.02
  config.num_rounds = 5
  config.model.name = 'resnet18'
  adam = dict(optimizer='adam', learning_rate=5e-4, momentum=0.0, weight_decay=0.0,
              batch_size=128, crop_pad=0)
  config.train = train_config(epochs=100, **adam)
  config.strategy = strategy_config('mal', mal_train=train_config(epochs=100, **adam))
  if arg.runlocal:
    runlocal_sizes(config)
    adam.update(learning_rate=2e-3, batch_size=64)
    config.train = train_config(epochs=15, lr_schedule='cosine', **adam)
    config.strategy.mal_train = train_config(epochs=15, lr_schedule='cosine', **adam)
  return config


def scal_protocol(dataset: str, arg: str | None, budget: int = 1_000,
                  ood_dataset: str | None = None,
                  runlocal_ood_dataset: str | None = None) -> ml_collections.ConfigDict:
  """SCAL's protocol (paper 002, Sec. 4.1 and App. A.2), for any dataset.

  No labels at first, so round 0 trains on ``budget`` random labels; +``budget``
  per round for 10 rounds (1,000; 500 for Fashion-MNIST), each query from a
  random subset of 10,000 unlabeled images; ResNet-18, SGD 0.1, momentum 0.9,
  weight decay 5e-4, 200 epochs, x0.1 at epoch 160, for every strategy. The
  paper gives neither the batch size nor the augmentation: jal uses 128 and
  4-pixel crops (and flips where the dataset allows). The strategy is
  ``scal``; ``--config.strategy.name=featuresim`` / ``dfm`` / ``random`` /
  ... run the paper's comparisons on the same protocol.

  Evaluation every round: accuracy, per-class accuracy, ECE (15 bins),
  Brier, NLL and the labeled pool's sampling bias; with ``ood_dataset``
  also the OOD AUROC against that dataset (Fig. 4a: SVHN against CIFAR-10)
  and accuracy and ECE under Gaussian blur (Fig. 4b-c, CIFAR-10-C's sigma
  table; the paper does not give the severity: jal uses 3).

  ``runlocal``: a 10,000-image pool (stratified) and a 2,000-image test
  split, 1,000 initial + 500 per round for 3 rounds, queries from 5,000
  candidates, a width-16 small CNN, 15 epochs (cosine), OOD against
  ``runlocal_ood_dataset`` (one that is offline here): minutes on 2 CPU cores.
  """
  arg = parse_arg(arg, runlocal=False)
  config = base_config()
  config.dataset.name = dataset
  config.initial_pool.size = budget
  config.budget = budget
  config.num_rounds = 10
  config.candidate_subset = 10_000
  config.model.name = 'resnet18'
  config.train = train_config(learning_rate=0.1, momentum=0.9, weight_decay=5e-4, epochs=200,
                              batch_size=128, crop_pad=4, lr_schedule='multistep',
                              lr_milestones=(0.8,))
  config.strategy = strategy_config('scal')
  if ood_dataset:
    config.evaluation.ood_dataset = ood_dataset
    config.evaluation.blur_severity = 3
  if arg.runlocal:
    runlocal_sizes(config)
    config.candidate_subset = 5_000
    config.train = train_config(learning_rate=0.05, epochs=15, batch_size=64, crop_pad=4,
                                lr_schedule='cosine')
    if ood_dataset:
      config.evaluation.ood_dataset = runlocal_ood_dataset
  return config


def initial_pools_protocol(dataset: str, arg: str | None) -> ml_collections.ConfigDict:
  """Paper 001's protocol: the initial pool chosen by self-supervision.

  5% of the train split initially, +10% per round (Sec. 4, "AL Details"),
  for 5 rounds (to 45%: the paper gives no end); ResNet-18, Adam lr 5e-4,
  weight decay 5e-4 (Munjal et al.'s CIFAR-10 setting, Sec. 4), flips only;
  100 epochs (not given). The initial pool is ``pretext_loss`` (the highest
  rotation-prediction losses), the query ``entropy`` (max-entropy, one of the
  paper's uncertainty methods); compare initial pools and strategies over 5
  trials with ``python -m jal.compare --initial_pools=random,pretext_loss,
  kmeans,binned --strategies=entropy,coreset --seeds=0,1,2,3,4``.

  ``runlocal``: a 10,000-image pool (stratified) and a 2,000-image test
  split, 1,000 initial + 500 per round for 3 rounds, a width-16 small CNN and
  15 epochs for the task model and the rotation network: minutes on 2 CPU cores.
  """
  arg = parse_arg(arg, runlocal=False)
  config = base_config()
  config.dataset.name = dataset
  config.initial_pool.name = 'pretext_loss'
  config.initial_pool.size = 0.05
  config.budget = 0.1
  config.num_rounds = 5
  config.model.name = 'resnet18'
  adam = dict(optimizer='adam', learning_rate=5e-4, momentum=0.0, weight_decay=5e-4,
              batch_size=128, crop_pad=0)
  config.train = train_config(epochs=100, **adam)
  config.initial_pool.ssl_model.name = 'resnet18'
  config.initial_pool.ssl_train = train_config(epochs=100, **adam)
  config.strategy = strategy_config('entropy')
  if arg.runlocal:
    runlocal_sizes(config)
    adam.update(learning_rate=2e-3, batch_size=64)
    config.train = train_config(epochs=15, lr_schedule='cosine', **adam)
    config.initial_pool.ssl_model.name = 'small_cnn'
    config.initial_pool.ssl_model.width = 16
    config.initial_pool.ssl_train = train_config(epochs=15, lr_schedule='cosine', **adam)
  return config
