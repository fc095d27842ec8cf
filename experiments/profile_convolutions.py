r"""Where jal's training time goes on a backend: forward, gradient, convolutions.

Prints, in one run, the medians of:

1. the small CNN's forward pass (train mode), gradient and eval pass at one
   batch, in jal and (if installed) PyTorch eager: is the gap in the forward
   or the backward pass?
2. one 3x3 convolution's forward pass, input gradient and kernel gradient,
   at three layer shapes of the small CNN (XLA alone);
3. four gradient steps as four calls and as one ``lax.fori_loop``: the cost of
   running convolutions inside a loop body (jax-ml/jax#12868 on XLA:CPU).

  python experiments/profile_convolutions.py [--batch_size=128]

Figures quoted in BENCHMARKS.md come from this script.
"""

from __future__ import annotations

import os

from absl import app, flags
import jax
import jax.numpy as jnp
import optax

import _bench
from jal.models import ClassifierHead, MultiHeadNet, get_backbone

_BATCH = flags.DEFINE_integer('batch_size', 128, 'Batch size.')
_WIDTH = flags.DEFINE_integer('width', 32, 'Small CNN width.')


def median_seconds(fn, repeats: int = 5) -> float:
  """Median wall time of ``fn()`` (which must block) after one warm-up call."""
  return _bench.measure(fn, repeats).median


def network_passes(batch: int, width: int) -> None:
  model = MultiHeadNet(get_backbone('small_cnn', width=width), {'classifier': ClassifierHead(10)})
  x = jax.random.normal(jax.random.key(0), (batch, 32, 32, 3))
  y = jnp.zeros(batch, jnp.int32)
  variables = model.init(jax.random.key(0), x, train=False)

  def loss(params, batch_stats, x):
    out, _ = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                         mutable=['batch_stats'])
    return optax.softmax_cross_entropy_with_integer_labels(out['classifier'], y).mean()

  forward = jax.jit(loss)
  gradient = jax.jit(jax.grad(loss))
  evaluate = jax.jit(lambda v, x: model.apply(v, x, train=False)['classifier'])
  p, s = variables['params'], variables['batch_stats']
  rows = {'jal': [
      median_seconds(lambda: forward(p, s, x).block_until_ready()),
      median_seconds(lambda: jax.block_until_ready(gradient(p, s, x))),
      median_seconds(lambda: evaluate(variables, x).block_until_ready())]}
  try:
    import torch  # pylint: disable=g-import-not-at-top
    import torch_reference  # pylint: disable=g-import-not-at-top
  except ImportError:
    torch = None
  if torch is not None:
    net = torch_reference.build_network('small_cnn', width, 10)
    xt, yt = torch.randn(batch, 3, 32, 32), torch.zeros(batch, dtype=torch.long)

    def torch_forward():
      with torch.no_grad():
        net.train()
        torch.nn.functional.cross_entropy(net(xt)[0], yt)

    def torch_gradient():
      net.train()
      net.zero_grad()
      torch.nn.functional.cross_entropy(net(xt)[0], yt).backward()

    def torch_eval():
      with torch.inference_mode():
        net.eval()
        net(xt)
    rows['torch eager'] = [median_seconds(f) for f in (torch_forward, torch_gradient, torch_eval)]
  print(f'small CNN width {width}, batch {batch} (images/s): forward (train mode), gradient, eval')
  for name, seconds in rows.items():
    print(f'  {name:12s} ' + '  '.join(f'{batch / t:9,.0f}' for t in seconds))


def convolutions(batch: int) -> None:
  numbers = ('NHWC', 'HWIO', 'NHWC')

  def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), [(1, 1), (1, 1)],
                                        dimension_numbers=numbers)

  forward = jax.jit(conv)
  input_gradient = jax.jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
  kernel_gradient = jax.jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
  print('one 3x3 convolution (ms): forward, input gradient, kernel gradient')
  for size, channels in ((32, 32), (16, 64), (8, 128)):
    x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
    w = jax.random.normal(jax.random.key(1), (3, 3, channels, channels)) * 0.1
    dy = jnp.ones_like(forward(x, w))
    times = [median_seconds(lambda: forward(x, w).block_until_ready()),
             median_seconds(lambda: input_gradient(x, w, dy).block_until_ready()),
             median_seconds(lambda: kernel_gradient(x, w, dy).block_until_ready())]
    print(f'  {batch}x{size}x{size}x{channels} -> {channels}: '
          + '  '.join(f'{1e3 * t:7.1f}' for t in times))


def loop_bodies(batch: int, width: int) -> None:
  model = get_backbone('small_cnn', width=width)
  x = jnp.ones((batch, 32, 32, 3))
  variables = model.init(jax.random.key(0), x, train=False)
  gradient = jax.grad(lambda v, x: jnp.sum(model.apply(v, x, train=False).pooled))
  step = jax.jit(gradient)
  zeros = jax.tree.map(jnp.zeros_like, variables)

  @jax.jit
  def in_loop(v, x, n):
    return jax.lax.fori_loop(
        0, n, lambda i, acc: jax.tree.map(jnp.add, acc, gradient(v, x + i)), zeros)

  calls = median_seconds(lambda: jax.block_until_ready([step(variables, x + i)
                                                        for i in range(4)]), 3)
  loop = median_seconds(lambda: jax.block_until_ready(in_loop(variables, x, jnp.int32(4))), 3)
  print(f'4 gradient steps (s): as 4 calls {calls:.3f}, inside one fori_loop {loop:.3f} '
        f'({loop / calls:.1f}x)')


def main(argv):
  del argv
  print(f'jax {jax.__version__} on {jax.default_backend()} ({jax.devices()[0].device_kind}), '
        f'{os.cpu_count()} CPU cores')
  network_passes(_BATCH.value, _WIDTH.value)
  convolutions(_BATCH.value)
  loop_bodies(_BATCH.value, _WIDTH.value)


if __name__ == '__main__':
  app.run(main)
