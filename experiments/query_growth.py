r"""How a query's time grows with the pool: 10,000 to 1,000,000 candidates on this machine.

  python experiments/query_growth.py                      # entropy, coreset, bald; 10^4..10^6
  python experiments/query_growth.py --sizes=10000,100000 --strategies=entropy

Tiny images (8x8x1, random) and a width-4 small CNN, so a million candidates
fit a laptop: the figure is how each strategy's query scales with the
number of candidates ``n`` (scoring, selection, the indices back), not its
absolute cost on real images. For each strategy and size, the first query
compiles and a second is timed; the table gives the seconds, the seconds
per 1,000 candidates, the process's peak resident memory so far (it only
grows: read the increase; on an accelerator also the device's peak so far,
`_bench.peak_device_bytes`), and the growth exponent fitted to the timed
seconds over the sizes (log-log least squares): 1 is linear.
"""

from __future__ import annotations

import argparse
import resource
import time

import jax
import numpy as np

import _bench
from jal import sharding, strategies
from jal.data import Dataset
from jal.pool import Pool
from jal.strategies import base
from jal.task import make_task

SHAPE = (8, 8, 1)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--sizes', default='10000,30000,100000,300000,1000000')
  parser.add_argument('--strategies', default='entropy,coreset,bald')
  parser.add_argument('--labeled', type=int, default=1000)
  parser.add_argument('--budget', type=int, default=100)
  parser.add_argument('--num_mc_samples', type=int, default=10)
  args = parser.parse_args()
  sizes = [int(s) for s in args.sizes.split(',')]
  rng = np.random.default_rng(0)
  total = args.labeled + max(sizes)
  images_np = rng.integers(0, 256, (total, *SHAPE), dtype=np.uint8)
  labels_np = rng.integers(0, 10, total).astype(np.int32)
  mean, std = np.full(1, 0.5, np.float32), np.full(1, 0.29, np.float32)
  mesh = sharding.make_mesh()
  on_device = sharding.replicated(mesh)
  print(f'query growth on {jax.devices()[0].platform}: 8x8x1 images, small CNN width 4, '
        f'{args.labeled} labeled, select {args.budget}, BALD T = {args.num_mc_samples}')
  print(f"{'strategy':10s} {'candidates':>12s} {'seconds':>9s} {'s / 1k':>8s} "
        f"{'peak RSS (GB)':>14s}")
  for name in args.strategies.split(','):
    times = []
    for n in sizes:
      count = args.labeled + n
      dataset = Dataset('synthetic', images_np[:count], labels_np[:count], images_np[:1],
                        labels_np[:1], tuple(str(c) for c in range(10)), True, mean, std)
      config = _bench.protocol()
      config.model.name, config.model.width = 'small_cnn', 4
      config.eval_batch_size = 4096
      config.strategy.name = name
      config.strategy.mc_dropout.num_mc_samples = args.num_mc_samples
      config.strategy.mc_dropout.mc_batch_size = 1024
      strategy = strategies.build(config, dataset.pool_data(), make_task(dataset.class_names),
                                  mesh)
      variables = strategy.trainer.init(jax.random.key(0)).variables
      task = base.TaskModel(strategy.trainer, variables, config.eval_batch_size)
      labeled = np.arange(args.labeled)
      pool = Pool(count, np.zeros(0, np.int64), np.zeros(0, np.int32)).add(
          labeled, labels_np[labeled])
      images = jax.device_put(dataset.train_images, on_device)
      labels = jax.device_put(pool.label_array(), on_device)
      ctx = base.RoundContext(config, strategy.data, 0, pool, images, labels, pool.unlabeled,
                              task, mesh)
      strategy.query(ctx, args.budget)  # compiles
      start = time.perf_counter()
      picked = strategy.query(ctx, args.budget)
      seconds = time.perf_counter() - start
      assert np.unique(picked).size == args.budget
      times.append(seconds)
      peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
      print(f'{name:10s} {n:12,d} {seconds:9.3f} {1000 * seconds / n:8.4f} {peak:14.2f}'
            f'{_bench.memory_text(_bench.peak_device_bytes())}', flush=True)
    slope = np.polyfit(np.log(sizes), np.log(times), 1)[0] if len(sizes) > 1 else float('nan')
    print(f'{name:10s} growth exponent {slope:.2f} (time ~ n^{slope:.2f})', flush=True)


if __name__ == '__main__':
  main()
