r"""Time and memory of CoreSet's k-center greedy (`jal.acquisition.coreset.k_center_greedy`).

  python experiments/coreset_greedy.py --n=100000 --m=1000 --d=512 --k=100

Random float32 features offset by ``--offset`` (post-ReLU features sit far
from the origin); prints the compile time, the steady-state time (median of
``--repeats`` runs, each ended by ``block_until_ready``) and XLA's temporary
buffer size for the compiled greedy.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from jal.acquisition.coreset import k_center_greedy


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--n', type=int, default=100_000)
  parser.add_argument('--m', type=int, default=1_000)
  parser.add_argument('--d', type=int, default=512)
  parser.add_argument('--k', type=int, default=100)
  parser.add_argument('--offset', type=float, default=10.0)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  points = jnp.asarray(rng.standard_normal((args.n, args.d), np.float32) + args.offset)
  centers = jnp.asarray(rng.standard_normal((args.m, args.d), np.float32) + args.offset)
  start = time.perf_counter()
  compiled = k_center_greedy.lower(points, centers, k=args.k).compile()
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(args.repeats):
    start = time.perf_counter()
    compiled(points, centers).block_until_ready()
    times.append(time.perf_counter() - start)
  stats = compiled.memory_analysis()
  temp = stats.temp_size_in_bytes / 1e6 if stats is not None else float('nan')
  print(f'k_center_greedy n={args.n:,} m={args.m:,} d={args.d} k={args.k} on '
        f'{jax.devices()[0].platform}: compile {compile_s:.2f} s, run {statistics.median(times):.3f} s '
        f'(median of {args.repeats}), temporary buffers {temp:.1f} MB')


if __name__ == '__main__':
  main()
