r"""PAL's Table 1: correlation between S_S and S_C on the unlabeled pool.

Trains jal's PAL scoring network on the config's initial pool, as round 0's
query does (the same keys), and prints the Pearson and Spearman correlation
of the self-supervision score S_S (Eq. 1) and the classification score S_C
(Eq. 3) over the unlabeled pool. The paper (Bhatnagar et al. 2020, Table 1;
ResNet-18 scoring network, 10% labeled) reports Pearson 0.49 / Spearman 0.50
on CIFAR-10 and 0.42 / 0.44 on SVHN. A positive correlation is what makes the
hybrid score an ensemble of two agreeing novelty estimates (Sec. 3.2).

  JAL_DATA_DIR=../shared/data python experiments/pal_score_correlation.py \
      --config configs/pal_cifar10.py:runlocal

Any PAL config works; ``--config.x=y`` overrides as in ``jal.main``.
"""

from __future__ import annotations

import sys
import time

import jax
import scipy.stats
from absl import app, flags
from ml_collections import config_flags

from jal import checks, cli, experiment, oracle, rng, sharding, train
from jal.strategies import pal
from jal.task import make_task
from jal.train import inference

_CONFIG = config_flags.DEFINE_config_file('config', None, 'A PAL config file[:variant].')


def main(argv):
  del argv
  config = _CONFIG.value
  dataset, _ = experiment.load_data(config)
  initial_size, _ = checks.check_config(config, dataset)
  mesh = sharding.make_mesh()
  pool_data = dataset.pool_data()
  answers = oracle.make_oracle(config, dataset.train_labels, dataset.num_classes)
  state = experiment.initial_state(config, pool_data, answers, initial_size, mesh)
  task = make_task(dataset.class_names)
  settings = config.strategy.pal
  strategy = pal.Strategy(config, pool_data, task, mesh, settings)
  images = jax.device_put(dataset.train_images, sharding.replicated(mesh))
  labels = jax.device_put(task.label_array(state.pool), sharding.replicated(mesh))

  # The scoring network of round 0's query (its keys), and its scores of the unlabeled pool.
  start = time.perf_counter()
  scorer = strategy.scorer.init(rng.key(config.seed, 'pal_scoring_init', 0))
  scorer, metrics = train.fit(
      strategy.scorer, scorer, images, labels, state.pool.labeled,
      epochs=settings.scoring_train.epochs, key=rng.key(config.seed, 'pal_scoring_train', 0))
  unlabeled = state.pool.unlabeled
  s_s, s_c = inference.map_batches(strategy.score_batch, (scorer.variables, images),
                                   unlabeled, config.eval_batch_size,
                                   sharding.batch_sharded(mesh))
  seconds = time.perf_counter() - start
  pearson = scipy.stats.pearsonr(s_s, s_c).statistic
  spearman = scipy.stats.spearmanr(s_s, s_c).statistic
  print(f'{dataset.name}: scoring network trained on {state.pool.num_labeled} labeled '
        f'(final loss {metrics["loss"]:.3f}), {unlabeled.size} unlabeled scored, '
        f'{seconds:.1f} s')
  print(f'S_S: mean {s_s.mean():.3f}, range [{s_s.min():.3f}, {s_s.max():.3f}]   '
        f'S_C: mean {s_c.mean():.3f}, range [{s_c.min():.3f}, {s_c.max():.3f}]')
  print(f'Pearson r_p = {pearson:.2f}, Spearman r_s = {spearman:.2f} '
        '(paper, CIFAR-10: 0.49 / 0.50; SVHN: 0.42 / 0.44)')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config'])
  cli.make_configs_importable(sys.argv)
  app.run(main)
