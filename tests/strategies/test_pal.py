"""Tests of jal.strategies.pal, PAL (Bhatnagar et al. 2021): the split of a query into sub-queries;
score_batch, which scores S_S and S_C (Eq. 1 and 3) in one pass over the four rotations, against a
forward pass per rotation and NumPy references of the equations; and the finetune scope of the
scoring network."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from conftest import build_strategy, tiny_config
from helpers import (reference_classification_score as _ref_s_c,
                     reference_self_supervision_score as _ref_s_s)
from jal import experiment, train
from jal.errors import JalError
from jal.models import ClassifierHead, MultiHeadNet, RotationHead, SmallCNN
from jal.strategies.pal import score_batch, subquery_sizes


_SETTINGS = settings(max_examples=50, deadline=None)


# ---------------------------------------------------------------------- subquery_sizes


@_SETTINGS
@given(budget=st.integers(1, 10_000), num_subqueries=st.integers(1, 50))
def test_subquery_sizes(budget, num_subqueries):
  sizes = subquery_sizes(budget, num_subqueries)
  assert sum(sizes) == budget
  assert len(sizes) == min(budget, num_subqueries)
  assert max(sizes) - min(sizes) <= 1
  assert min(sizes) >= 1
  assert sizes == sorted(sizes, reverse=True)  # larger first


def test_subquery_sizes_examples():
  assert subquery_sizes(10, 3) == [4, 3, 3]
  assert subquery_sizes(12, 4) == [3, 3, 3, 3]
  assert subquery_sizes(5, 1) == [5]
  assert subquery_sizes(3, 5) == [1, 1, 1]  # K > budget: one each
  assert subquery_sizes(1, 4) == [1]


# ------------------------------------------------------------------------- score_batch

_NUM_CLASSES = 3
_MEAN = np.array([0.4], np.float32)
_STD = np.array([0.2], np.float32)


def _numpy_variables(model, rng: np.random.Generator):
  """Variables of ``model`` drawn in NumPy (jax.random compiles slowly on a CPU).

  Conv and dense kernels ~ N(0, 1 / fan_in) (the heads 30 times larger, so the
  softmaxes are far from uniform), biases and BN shifts small, BN scales near
  1, running means near 0 and running variances in [0.5, 1.5]: eval-mode batch
  norm is then not an identity.
  """
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)),
                                             train=False))

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    shape = leaf.shape
    if "'kernel'" in name:
      x = rng.normal(size=shape) / np.sqrt(np.prod(shape[:-1]))
      if 'heads_' in name:
        x = 30.0 * x
    elif "'scale'" in name:
      x = 1.0 + 0.1 * rng.normal(size=shape)
    elif "'var'" in name:
      x = rng.uniform(0.5, 1.5, size=shape)
    else:  # biases, BN shifts, running means
      x = 0.05 * rng.normal(size=shape)
    return jnp.asarray(x, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, dict(shapes))


@pytest.fixture(scope='module')
def scoring_setup():
  model = MultiHeadNet(SmallCNN(width=4), {'classifier': ClassifierHead(_NUM_CLASSES),
                                           'rotation': RotationHead()})
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
  variables = _numpy_variables(model, rng)
  return model, images, variables


def test_score_batch_matches_loop_over_rotations(scoring_setup):
  model, images, variables = scoring_setup
  fn = jax.jit(lambda v, im, idx: score_batch(model, jnp.asarray(_MEAN), jnp.asarray(_STD),
                                              lambda s: s, v, im, idx))
  idx = np.array([4, 1, 5, 1], np.int32)  # out of order, with a repeat
  s_s, s_c = fn(variables, jnp.asarray(images), jnp.asarray(idx))
  chex.assert_shape(s_s, (4,))
  chex.assert_shape(s_c, (4,))

  # Reference: one forward pass per rotation, the rotation done with np.rot90.
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  x = (images[idx].astype(np.float32) / 255.0 - _MEAN) / _STD
  rotation_probs = []
  class_logits = None
  for i in range(4):
    out = apply(variables, jnp.asarray(np.rot90(x, i, axes=(1, 2)).copy()))
    rotation_probs.append(np.asarray(out['rotation']))
    if i == 0:
      class_logits = np.asarray(out['classifier'])
  rotation_logits = np.stack(rotation_probs)  # [4, B, 4]
  ref_s_s = _ref_s_s(rotation_logits)
  ref_s_c = _ref_s_c(class_logits)
  chex.assert_trees_all_close(s_s, ref_s_s.astype(np.float32), atol=1e-4)
  chex.assert_trees_all_close(s_c, ref_s_c.astype(np.float32), atol=1e-4)
  # The scores actually vary between examples (the check is not vacuous).
  assert np.ptp(ref_s_s[:3]) > 1e-4
  assert np.ptp(ref_s_c[:3]) > 1e-4
  # The repeated index scores the same.
  np.testing.assert_allclose(np.asarray(s_s)[1], np.asarray(s_s)[3], atol=1e-6)


def test_score_batch_rotation_order_matters(scoring_setup):
  # If the copies were scored against the wrong rotation labels (e.g. clockwise
  # instead of counter-clockwise), S_S would differ: swapping the 90 and 270
  # degree copies of the reference must change the value.
  model, images, variables = scoring_setup
  apply = jax.jit(lambda v, x: model.apply(v, x, train=False))
  x = (images[:3].astype(np.float32) / 255.0 - _MEAN) / _STD
  logits = np.stack([np.asarray(apply(variables, jnp.asarray(np.rot90(x, i, axes=(1, 2)).copy()))
                                ['rotation']) for i in range(4)])
  swapped = logits[[0, 3, 2, 1]]
  s_s, _ = jax.jit(lambda v, im, idx: score_batch(model, jnp.asarray(_MEAN), jnp.asarray(_STD),
                                                  lambda s: s, v, im, idx))(
      variables, jnp.asarray(images), jnp.arange(3, dtype=jnp.int32))
  chex.assert_trees_all_close(s_s, _ref_s_s(logits).astype(np.float32), atol=1e-4)
  assert not np.allclose(_ref_s_s(swapped), _ref_s_s(logits), atol=1e-4)


# ---------------------------------------------------------------------- finetune scope


def test_pal_finetune_scope_head_trains_only_the_rotation_head():
  import jax
  config = tiny_config('pal', **{'strategy.pal.finetune_scope': 'head'})
  strategy, dataset = build_strategy(config)
  images = jax.device_put(dataset.train_images)
  labels = jax.device_put(dataset.train_labels)
  state = strategy.scorer.init(jax.random.key(0))
  before = jax.device_get(state.variables)
  tuned, _ = train.fit(strategy.finetuner, strategy.finetuner.from_variables(before), images,
                       labels, np.arange(40), epochs=2, key=jax.random.key(1))
  after = jax.device_get(tuned.variables)
  for name in ('backbone', 'heads_classifier'):
    for a, b in zip(jax.tree.leaves(before['params'][name]), jax.tree.leaves(after['params'][name])):
      np.testing.assert_array_equal(a, b)
  for a, b in zip(jax.tree.leaves(before['batch_stats']), jax.tree.leaves(after['batch_stats'])):
    np.testing.assert_array_equal(a, b)
  assert not np.array_equal(before['params']['heads_rotation']['fc']['kernel'],
                            after['params']['heads_rotation']['fc']['kernel'])


def test_unknown_finetune_scope(tmp_path):
  with pytest.raises(JalError, match="finetune_scope='x' is unknown"):
    experiment.run(tiny_config('pal', **{'strategy.pal.finetune_scope': 'x'}), str(tmp_path))
