r"""Time to draw MC-dropout keep masks: threefry per element against `dropout_keep_mask`.

  python experiments/dropout_masks.py

Draws T x B x C x H x W masks (default 20 x 500 x 32 x 14 x 14, 62.7 M
elements: the second block of a small CNN over 500 MNIST candidates, 20 MC
passes) with keep probability 0.7, summed inside the compiled function so
nothing is copied out; prints the median of 3 runs after a compiling one.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp

from jal.models.layers import dropout_keep_mask


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--shape', default='20,500,32,14,14')
  parser.add_argument('--keep', type=float, default=0.7)
  args = parser.parse_args()
  shape = tuple(int(v) for v in args.shape.split(','))
  draws = {
      'jax.random.bernoulli (threefry per element)':
          lambda k: jnp.sum(jax.random.bernoulli(k, args.keep, shape)),
      'jal.models.layers.dropout_keep_mask': lambda k: jnp.sum(dropout_keep_mask(k, shape,
                                                                                 args.keep)),
  }
  times = {}
  for name, fn in draws.items():
    f, key = jax.jit(fn), jax.random.key(0)
    f(key).block_until_ready()
    runs = []
    for _ in range(3):
      start = time.perf_counter()
      f(key).block_until_ready()
      runs.append(time.perf_counter() - start)
    times[name] = statistics.median(runs)
  reference = next(iter(times.values()))
  for name, seconds in times.items():
    print(f'{name}: {seconds:.3f} s ({reference / seconds:.1f}x) for {shape} on '
          f'{jax.devices()[0].platform}')


if __name__ == '__main__':
  main()
