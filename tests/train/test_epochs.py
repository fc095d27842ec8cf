"""Tests of jal.train.epochs, the device-side epoch every fit uses: each pool index is fed once per
epoch and the fill-up masked, the epoch's metrics are exact means, the order is a fresh permutation
each epoch, the compiled loop and the host loop give the same network, and an empty pool is
refused."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import sharding, train
from jal.data import ImageSpec
from jal.errors import JalError
from jal.models import ClassifierHead, MultiHeadNet, get_backbone
from jal.objectives import masked_mean
from jal.objectives.classification import cross_entropy_loss

N = 90  # examples in the split; labels[i] = i, so a batch's labels are its indices


class _Linear(nn.Module):
  """The smallest model a Trainer accepts: a dict of outputs, no batch norm."""

  @nn.compact
  def __call__(self, x, train):
    del train
    return {'classifier': nn.Dense(2)(x.reshape(x.shape[0], -1))}


def _counting_loss(pool):
  """A loss whose metrics count what the epoch fed it.

  Like every objective's, its metrics are means over the batch's real
  examples (``count`` excepted: the number of real examples itself).
  """
  pool = jnp.asarray(pool)

  def loss_fn(apply_fn, variables, batch, key, progress):
    del key
    out = apply_fn(variables, batch.images, train=True)['classifier']
    loss = masked_mean(jnp.mean(out ** 2, -1), batch.mask)
    ids = batch.labels.astype(jnp.float32)
    mask = batch.mask
    fill = 1.0 - mask
    real = jnp.maximum(jnp.sum(mask), 1.0)
    return loss, (variables['batch_stats'], {
        'count': jnp.sum(mask), 'id_mean': jnp.sum(ids * mask) / real,
        'id_square_mean': jnp.sum(ids ** 2 * mask) / real, 'fill': jnp.sum(fill) / real,
        'fill_from_pool': jnp.sum(fill * jnp.isin(batch.labels, pool)) / real,
        'batches': jnp.float32(1.0), 'progress': progress})
  return loss_fn


def _trainer(loss_fn, batch_size, compiled, model=None, image_shape=(2, 2, 1)):
  cfg = train.train_config(batch_size=batch_size, epochs=1, learning_rate=0.01, crop_pad=0,
                           compiled_epochs=compiled)
  spec = ImageSpec(image_shape, np.zeros(1, np.float32), np.ones(1, np.float32), False)
  return train.Trainer(model or _Linear(), loss_fn, cfg, spec, sharding.make_mesh())


def _data(image_shape=(2, 2, 1)):
  images = np.random.default_rng(0).integers(0, 256, (N, *image_shape), dtype=np.uint8)
  return jax.device_put(images), jax.device_put(np.arange(N, dtype=np.int32))


@pytest.mark.parametrize('compiled', [False, True])
@pytest.mark.parametrize('n,batch_size', [(37, 8), (5, 8), (16, 8), (1, 4), (90, 7)])
def test_epoch_feeds_every_index_once_and_masks_the_fill_up(n, batch_size, compiled):
  indices = np.random.default_rng(n).choice(N, n, replace=False)
  trainer = _trainer(_counting_loss(indices), batch_size, compiled)
  images, labels = _data()
  state = trainer.init(jax.random.key(0))
  for epochs in (1, 2):
    state, metrics = train.fit(trainer, state, images, labels, indices, epochs=epochs,
                               key=jax.random.key(epochs))
    steps = -(-n // batch_size)
    assert metrics['batches'] == 1.0  # a constant's mean is the constant
    # The last epoch's progress: the fraction of the fit's epochs done before it.
    np.testing.assert_allclose(metrics['progress'], (epochs - 1) / epochs)
    # The epoch's metrics are exact means over its n real examples: each
    # step's mean weighs as many as the step has real examples.
    sizes = [min(batch_size, n - i * batch_size) for i in range(steps)]
    assert sum(sizes) == n
    np.testing.assert_allclose(metrics['count'], sum(s * s for s in sizes) / n, rtol=1e-6)
    totals = {k: v * n for k, v in metrics.items()}
    np.testing.assert_allclose(totals['id_mean'], indices.sum(), rtol=1e-6)
    np.testing.assert_allclose(totals['id_square_mean'], (indices ** 2).sum(), rtol=1e-6)
    np.testing.assert_allclose(totals['fill'], steps * batch_size - n, rtol=1e-6)
    np.testing.assert_allclose(totals['fill_from_pool'], totals['fill'])
  assert int(state.step) == 3 * steps


def test_epoch_order_is_a_fresh_permutation_each_epoch():
  indices = np.arange(10, 50)
  trainer = _trainer(_counting_loss(indices), 8, False)
  pool = np.zeros(N, np.int32)
  pool[:40] = indices
  state = trainer.init(jax.random.key(0))
  orders = []
  for step in (0, 5, 10):
    state = state.replace(step=jnp.int32(step))
    images, labels = _data()
    (order,), totals, count = trainer.loop.start_epoch(
        state, (images, labels), [(jnp.asarray(pool), jnp.int32(40))],
        {'learning_rate': jnp.float32(0), 'progress': jnp.float32(0)}, jax.random.key(1))
    order = np.asarray(order)
    assert sorted(order[:40].tolist()) == indices.tolist()
    np.testing.assert_array_equal(order[40:], 0)
    assert float(count) == 0 and all(float(t) == 0 for t in totals.values())
    orders.append(order[:40].tobytes())
  assert len(set(orders)) == 3 and orders[0] != indices.astype(np.int32).tobytes()


def test_compiled_and_host_epochs_give_the_same_network():
  """One compiled loop per epoch and a host loop of compiled steps agree."""
  shape = (8, 8, 1)
  images, labels = _data(shape)
  labels = jax.device_put(np.arange(N, dtype=np.int32) % 3)
  results = []
  for compiled in (False, True):
    model = MultiHeadNet(get_backbone('small_cnn', width=2), {'classifier': ClassifierHead(3)})
    trainer = _trainer(cross_entropy_loss, 8, compiled, model, shape)
    state = trainer.init(jax.random.key(0))
    state, metrics = train.fit(trainer, state, images, labels, np.arange(3, 40), epochs=2,
                               key=jax.random.key(4))
    counts = trainer.trace_counts
    assert (counts['train_epoch'], counts['train_step']) == ((1, 0) if compiled else (0, 1))
    results.append((jax.device_get(state.variables), metrics))
  chex.assert_trees_all_close(results[0][0], results[1][0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(results[0][1]['loss'], results[1][1]['loss'], rtol=1e-5)


def test_fit_rejects_an_empty_pool():
  trainer = _trainer(_counting_loss(np.arange(3)), 4, False)
  images, labels = _data()
  with pytest.raises(JalError, match='must not be empty'):
    train.fit(trainer, trainer.init(jax.random.key(0)), images, labels,
                 np.zeros(0, np.int64), epochs=1, key=jax.random.key(0))
