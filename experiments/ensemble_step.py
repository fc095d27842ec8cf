r"""Train-step time of an M-member ensemble, vmapped or looped, against one member.

`jal.models.Ensemble` runs its members vmapped on GPU/TPU and one after
another on CPU. This script measures why: the compiled gradient step (forward,
cross-entropy per member, backward) of one member, of M members in a loop and
of M vmapped members, on the same batch, in one run.

  python experiments/ensemble_step.py                      # small CNN, 2 CPU cores
  python experiments/ensemble_step.py --network=resnet18 --width=64 --batch_size=128
"""

from __future__ import annotations

from absl import app, flags
import jax
import jax.numpy as jnp
import optax

import _bench
from jal.models import ClassifierHead, Ensemble, MultiHeadNet, get_backbone

_NETWORK = flags.DEFINE_enum('network', 'small_cnn', ['small_cnn', 'resnet18'], 'Member network.')
_WIDTH = flags.DEFINE_integer('width', 16, 'Channels of the first stage.')
_BATCH = flags.DEFINE_integer('batch_size', 64, 'Batch size.')
_MEMBERS = flags.DEFINE_integer('num_members', 3, 'M.')
_REPEATS = flags.DEFINE_integer('repeats', 5, 'Timed steps after the compiling one.')


def _step_seconds(model, x, labels, members: bool) -> _bench.Timing:
  variables = model.init({'params': jax.random.key(1)}, x[:1], train=False)

  def loss(params, batch_stats):
    out, state = model.apply({'params': params, 'batch_stats': batch_stats}, x, train=True,
                             mutable=['batch_stats'])
    logits = out['members'] if members else out['classifier'][:, None]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, labels[:, None])
    return jnp.sum(jnp.mean(ce, axis=0)), state

  step = jax.jit(jax.grad(loss, has_aux=True))
  return _bench.measure(
      lambda: jax.block_until_ready(step(variables['params'], variables['batch_stats'])),
      _REPEATS.value)


def main(argv):
  del argv
  member = MultiHeadNet(get_backbone(_NETWORK.value, width=_WIDTH.value),
                        {'classifier': ClassifierHead(10)})
  x = jax.random.normal(jax.random.key(0), (_BATCH.value, 32, 32, 3))
  labels = jnp.zeros(_BATCH.value, jnp.int32)
  m = _MEMBERS.value
  print(f'{_NETWORK.value} width {_WIDTH.value}, batch {_BATCH.value}, M = {m}, '
        f'{jax.device_count()} x {jax.devices()[0].device_kind}; median of {_REPEATS.value} steps')
  timing = _step_seconds(member, x, labels, members=False)
  single = timing.median
  print(f'  one member         {single * 1e3:8.0f} ms{_bench.memory_text(timing.peak_bytes)}')
  for name, vectorize in (('M in a loop', False), ('M vmapped', True)):
    timing = _step_seconds(Ensemble(member, m, vectorize=vectorize), x, labels, members=True)
    seconds = timing.median
    print(f'  {name:18s} {seconds * 1e3:8.0f} ms   ({seconds / single:.1f}x one member)'
          f'{_bench.memory_text(timing.peak_bytes)}')


if __name__ == '__main__':
  app.run(main)
