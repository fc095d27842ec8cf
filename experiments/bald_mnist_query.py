r"""The BALD query of issue 18's point 5, alone: T MC-dropout passes over MNIST-sized candidates.

  PYTHONPATH=. python experiments/bald_mnist_query.py [--candidates=10000] [--num_mc_samples=20]
  /tmp/tvenv/bin/python experiments/bald_mnist_query.py --torch   # the same work in PyTorch

Times jal's compiled scoring of a BALD query (`jal.strategies.mc_dropout`, chunks of
``--mc_batch_size`` candidates, T passes each, the scores back on the host) on random
28x28x1 images for three task models: the width-16 small CNN of ``configs/pal_mnist.py:runlocal``
with dropout after every convolution (the ``'backbone'`` placement, the old default) and before
the classifier only (``'last_layer'``, the new default on it), and the DBAL CNN of Gal, Islam &
Ghahramani 2017 at its own dropout (``'network'``). Weights are freshly initialised: a query's
cost does not depend on them. With ``--torch`` (a Python with PyTorch, no jal needed) the DBAL
CNN's query in PyTorch instead: ``nn.Dropout`` in train mode, softmax, the BALD score, in the same
chunks. Each figure is the median of ``--repeats`` queries after one untimed warm-up (jal's
compile); wall seconds and this process's CPU seconds, since the machine may be shared.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def _timed(fn, repeats):
  fn()  # warm-up: compiles
  walls, cpus = [], []
  for _ in range(repeats):
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    walls.append(time.perf_counter() - wall)
    cpus.append(time.process_time() - cpu)
  return statistics.median(walls), statistics.median(cpus)


def jal_queries(images, args):
  import functools
  import jax
  from jal import sharding
  from jal.acquisition import uncertainty
  from jal.models import ClassifierHead, MultiHeadNet, get_backbone
  from jal.strategies import mc_dropout
  from jal.train import inference

  p = 0.3
  nets = {
      'small_cnn w16, backbone (old default)': (
          MultiHeadNet(get_backbone('small_cnn', width=16, dropout_rate=p),
                       {'classifier': ClassifierHead(10)}), mc_dropout.mc_logits),
      'small_cnn w16, last_layer (new default)': (
          MultiHeadNet(get_backbone('small_cnn', width=16),
                       {'classifier': ClassifierHead(10, dropout_rate=p)}),
          mc_dropout.mc_logits_last_layer),
      'dbal_cnn, network (new default)': (
          MultiHeadNet(get_backbone('dbal_cnn'), {'classifier': ClassifierHead(10)}),
          mc_dropout.mc_logits),
  }
  mesh = sharding.make_mesh()
  device_images = jax.device_put(images, sharding.replicated(mesh))
  indices = np.arange(images.shape[0])
  for name, (model, sample_fn) in nets.items():
    variables = model.init(jax.random.key(0), device_images[:2].astype(np.float32), train=False)
    chunk = jax.jit(functools.partial(
        mc_dropout._score_chunk, model, np.float32([0.1307]), np.float32([0.3081]),
        args.num_mc_samples, sample_fn,
        uncertainty.bald, lambda x: x))
    run = lambda: inference.map_batches(chunk, (variables, device_images, jax.random.key(1)),
                                        indices, args.mc_batch_size,
                                        sharding.batch_sharded(mesh))
    yield name, _timed(run, args.repeats)


def torch_query(images, args):
  import torch
  from torch import nn
  torch.manual_seed(0)
  net = nn.Sequential(nn.Conv2d(1, 32, 4), nn.ReLU(), nn.Conv2d(32, 32, 4), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Dropout(0.25), nn.Flatten(), nn.Linear(3872, 128),
                      nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10))
  net.train()  # dropout on
  x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255).sub(0.1307).div(0.3081)

  @torch.no_grad()
  def run():
    scores = []
    for start in range(0, x_all.shape[0], args.mc_batch_size):
      x = x_all[start:start + args.mc_batch_size]
      x = x.repeat(args.num_mc_samples, 1, 1, 1)  # T passes of the chunk as one batch
      log_p = torch.log_softmax(net(x), -1).view(args.num_mc_samples, -1, 10)
      p = log_p.exp()
      mean = p.mean(0)
      entropy = -(mean * mean.clamp_min(1e-12).log()).sum(-1)
      scores.append(entropy + (p * log_p).sum(-1).mean(0))
    return torch.cat(scores).numpy()
  yield (f'dbal_cnn, PyTorch {torch.__version__}, {torch.get_num_threads()} threads',
         _timed(run, args.repeats))


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--candidates', type=int, default=10_000)
  parser.add_argument('--num_mc_samples', type=int, default=20)
  parser.add_argument('--mc_batch_size', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=1)
  parser.add_argument('--torch', action='store_true')
  args = parser.parse_args()
  images = np.random.default_rng(0).integers(0, 256, (args.candidates, 28, 28, 1), np.uint8)
  print(f'{args.candidates} candidates, T = {args.num_mc_samples}, chunks of '
        f'{args.mc_batch_size}; median of {args.repeats}')
  for name, (wall, cpu) in (torch_query if args.torch else jal_queries)(images, args):
    print(f'{name}: {wall:.2f} s wall, {cpu:.2f} s CPU', flush=True)


if __name__ == '__main__':
  main()
