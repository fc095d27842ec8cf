r"""Time and memory of CoreSet's k-center greedy (`jal.acquisition.coreset.k_center_greedy`).

  python experiments/coreset_greedy.py --n=100000 --m=1000 --d=512 --k=100

Random float32 features offset by ``--offset`` (post-ReLU features sit far
from the origin), drawn on the device; prints the compile time, the
steady-state time (median of ``--repeats`` runs, each ended by
``block_until_ready``), XLA's temporary buffer size for the compiled greedy
and, where the backend counts it, the peak device memory.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax

import _bench
from jal.acquisition.coreset import k_center_greedy


def time_greedy(n: int, m: int, d: int, k: int, offset: float = 10.0,
                repeats: int = 3) -> dict:
  """Compiles and times ``k_center_greedy`` on ``n`` points and ``m`` centers of ``d`` features.

  Points and centers are standard normal plus ``offset``, drawn on the
  device (a host draw of 10^6 x 512 takes seconds).

  Returns:
    ``compile_seconds``, ``seconds`` (median of ``repeats``), ``all_seconds``,
    ``temp_bytes`` (XLA's temporary buffers; None where not reported) and
    ``peak_bytes`` (`_bench.peak_device_bytes`).
  """
  point_key, center_key = jax.random.split(jax.random.key(0))
  points = jax.random.normal(point_key, (n, d)) + offset
  centers = jax.random.normal(center_key, (m, d)) + offset
  jax.block_until_ready((points, centers))
  start = time.perf_counter()
  compiled = k_center_greedy.lower(points, centers, k=k).compile()
  compile_seconds = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    compiled(points, centers).block_until_ready()
    times.append(time.perf_counter() - start)
  stats = compiled.memory_analysis()
  return {'compile_seconds': compile_seconds, 'seconds': statistics.median(times),
          'all_seconds': times, 'temp_bytes': stats.temp_size_in_bytes if stats else None,
          'peak_bytes': _bench.peak_device_bytes()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--n', type=int, default=100_000)
  parser.add_argument('--m', type=int, default=1_000)
  parser.add_argument('--d', type=int, default=512)
  parser.add_argument('--k', type=int, default=100)
  parser.add_argument('--offset', type=float, default=10.0)
  parser.add_argument('--repeats', type=int, default=3)
  args = parser.parse_args()
  r = time_greedy(args.n, args.m, args.d, args.k, args.offset, args.repeats)
  temp = r['temp_bytes'] / 1e6 if r['temp_bytes'] is not None else float('nan')
  print(f'k_center_greedy n={args.n:,} m={args.m:,} d={args.d} k={args.k} on '
        f'{jax.devices()[0].platform}: compile {r["compile_seconds"]:.2f} s, run '
        f'{r["seconds"]:.3f} s (median of {args.repeats}), temporary buffers {temp:.1f} MB'
        f'{_bench.memory_text(r["peak_bytes"])}')


if __name__ == '__main__':
  main()
