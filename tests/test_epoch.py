"""The device-side epoch: shuffle, batches and fill-up, compiled loop vs host loop."""

from __future__ import annotations

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal import config_util, sharding, training
from jal.errors import JalError
from jal.models import ClassifierHead, MultiHeadNet, get_backbone

N = 90  # examples in the split; labels[i] = i, so a batch's labels are its indices


class _Linear(nn.Module):
  """The smallest model a Trainer accepts: a dict of outputs, no batch norm."""

  @nn.compact
  def __call__(self, x, train):
    del train
    return {'classifier': nn.Dense(2)(x.reshape(x.shape[0], -1))}


def _counting_loss(pool):
  """A loss whose metrics count what the epoch fed it (sums over the batch)."""
  pool = jnp.asarray(pool)

  def loss_fn(apply_fn, variables, images, labels, mask, key, progress):
    del key
    out = apply_fn(variables, images, train=True)['classifier']
    loss = training.masked_mean(jnp.mean(out ** 2, -1), mask)
    ids = labels.astype(jnp.float32)
    fill = 1.0 - mask
    return loss, (variables['batch_stats'], {
        'count': jnp.sum(mask), 'id_sum': jnp.sum(ids * mask),
        'id_square_sum': jnp.sum(ids ** 2 * mask), 'fill': jnp.sum(fill),
        'fill_from_pool': jnp.sum(fill * jnp.isin(labels, pool)),
        'batches': jnp.float32(1.0), 'progress': progress})
  return loss_fn


def _trainer(loss_fn, batch_size, compiled, model=None, image_shape=(2, 2, 1)):
  cfg = config_util.train_config(batch_size=batch_size, epochs=1, learning_rate=0.01,
                                 crop_pad=0, compiled_epochs=compiled)
  return training.Trainer(model or _Linear(), cfg, loss_fn, np.zeros(1, np.float32),
                          np.ones(1, np.float32), False, sharding.make_mesh(), image_shape)


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
    state, metrics = training.fit(trainer, state, images, labels, indices, epochs=epochs,
                                  key=jax.random.key(epochs))
    steps = -(-n // batch_size)
    assert metrics['batches'] == 1.0  # the metrics are means over the epoch's steps
    # The last epoch's progress: the fraction of the fit's epochs done before it.
    np.testing.assert_allclose(metrics['progress'], (epochs - 1) / epochs)
    totals = {k: v * steps for k, v in metrics.items()}
    assert totals['count'] == n
    np.testing.assert_allclose(totals['id_sum'], indices.sum(), rtol=1e-6)
    np.testing.assert_allclose(totals['id_square_sum'], (indices ** 2).sum(), rtol=1e-6)
    assert totals['fill'] == steps * batch_size - n
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
    order, totals, first = trainer._start_epoch_jit(state, jnp.asarray(pool), jnp.int32(40),
                                                    jax.random.key(1))
    order = np.asarray(order)
    assert sorted(order[:40].tolist()) == indices.tolist()
    np.testing.assert_array_equal(order[40:], 0)
    assert int(first) == step and all(float(t) == 0 for t in totals.values())
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
    trainer = _trainer(training.cross_entropy_loss, 8, compiled, model, shape)
    state = trainer.init(jax.random.key(0))
    state, metrics = training.fit(trainer, state, images, labels, np.arange(3, 40), epochs=2,
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
    training.fit(trainer, trainer.init(jax.random.key(0)), images, labels,
                 np.zeros(0, np.int64), epochs=1, key=jax.random.key(0))
