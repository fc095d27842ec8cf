"""Semantic segmentation on the loop (jal.task.SegmentationTask): masks as labels, the pixel
objective and mIoU against NumPy, aligned augmentation, masks through the pool and checkpoints,
per-pixel strategy scores, the biased initial pool, and runs end to end on generated masks and
on a slice of the real CamVid."""

from __future__ import annotations

import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from PIL import Image

from conftest import tiny_config
from configs import common
from jal import checkpoint, comparison, experiment, sharding
from jal.data import ImageSpec
from jal.errors import JalError
from jal.objectives.classification import (masked_accuracy, per_example_cross_entropy,
                                           task_cross_entropy)
from jal.pool import Pool
from jal.segmentation_metrics import IGNORE
from jal.strategies import mc_dropout
from jal.task import SegmentationTask, make_task
from jal.train import Trainer

CLASSES = ('background', 'red', 'green')


def _task(reduction='mean'):
  return SegmentationTask(CLASSES, 'small_fcn', reduction)


def test_labels_counts_and_which_images_hold_a_class():
  task = _task()
  masks = np.array([[[0, 1], [IGNORE, 1]], [[2, 2], [2, 0]]], np.uint8)
  pool = Pool(3, np.array([2, 0]), masks)
  labels = task.label_array(pool)
  assert labels.dtype == np.uint8 and labels.shape == (3, 2, 2)
  np.testing.assert_array_equal(labels[2], masks[0])
  np.testing.assert_array_equal(labels[0], masks[1])
  assert (labels[1] == IGNORE).all()  # unlabeled: void, never read by the loss
  np.testing.assert_array_equal(task.class_counts(masks), [2, 2, 3])  # pixels, void not counted
  np.testing.assert_array_equal(task.contains(masks, np.array([1])), [True, False])
  np.testing.assert_array_equal(task.contains(masks, np.array([], np.int64)), [False, False])
  assert task.metric == 'test_miou'


@pytest.mark.parametrize('reduction', ['mean', 'max', 'sum'])
def test_a_pixel_score_becomes_an_image_score_by_the_configured_reduction(reduction):
  scores = np.random.default_rng(0).random((3, 4, 5)).astype(np.float32)
  want = {'mean': scores.mean((1, 2)), 'max': scores.max((1, 2)),
          'sum': scores.sum((1, 2))}[reduction]
  np.testing.assert_allclose(_task(reduction).per_image(jnp.asarray(scores)), want, rtol=1e-6)


def test_bad_backbones_and_reductions_are_one_line():
  with pytest.raises(JalError, match="'resnet18' is a classification backbone"):
    SegmentationTask(CLASSES, 'resnet18')
  with pytest.raises(JalError, match="reduction='median' must be one of mean, max, sum"):
    SegmentationTask(CLASSES, 'small_fcn', 'median')


def test_evaluate_is_miou_over_the_test_split_with_void_and_absent_classes():
  rng = np.random.default_rng(1)
  n, k = 20, 4  # more than one chunk of the test split
  truth = rng.integers(0, 3, (n, 5, 6)).astype(np.uint8)  # class 3 never true ...
  truth[rng.random(truth.shape) < 0.2] = IGNORE
  logits = rng.normal(size=(n, 5, 6, k)).astype(np.float32)
  logits[..., 3] = -10.0  # ... nor predicted: absent from both, left out of the mean
  predicted = logits.argmax(-1)
  task = SegmentationTask(('a', 'b', 'c', 'd'), 'small_fcn')
  got = task.evaluate(lambda images, idx: logits[idx], np.zeros((n, 5, 6, 3), np.uint8), truth,
                      {}, None)
  valid = truth != IGNORE
  ious = []
  for c in range(k):
    p, t = (predicted == c) & valid, (truth == c) & valid
    ious.append((p & t).sum() / (p | t).sum() if (p | t).any() else None)
  assert got['test_per_class_iou'][3] is None
  assert got['test_miou'] == pytest.approx(np.mean([v for v in ious if v is not None]))
  np.testing.assert_allclose(got['test_per_class_iou'][:3], ious[:3])
  assert got['test_pixel_accuracy'] == pytest.approx((predicted == truth)[valid].mean())
  with pytest.raises(JalError, match='evaluation sets'):
    task.evaluate(lambda images, idx: logits[idx], None, truth, {'ood': None}, None)


def test_the_pixel_objective_matches_numpy_and_leaves_void_and_padding_out():
  rng = np.random.default_rng(2)
  logits = rng.normal(size=(3, 4, 4, 3)).astype(np.float32)
  labels = rng.integers(0, 3, (3, 4, 4)).astype(np.uint8)
  labels[rng.random(labels.shape) < 0.3] = IGNORE
  labels[2] = IGNORE  # an image without a labelled pixel
  mask = np.array([1.0, 1.0, 0.0], np.float32)  # the third example is padding
  log_p = np.asarray(jax.nn.log_softmax(logits, -1))
  valid = labels != IGNORE
  ce = -np.take_along_axis(log_p, np.where(valid, labels, 0)[..., None].astype(int), -1)[..., 0]
  per_image = [ce[i][valid[i]].mean() if valid[i].any() else 0.0 for i in range(3)]
  np.testing.assert_allclose(per_example_cross_entropy(jnp.asarray(logits), jnp.asarray(labels)),
                             per_image, rtol=1e-5)
  counted = valid & (mask[:, None, None] > 0)
  assert float(task_cross_entropy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
               ) == pytest.approx(ce[counted].mean(), rel=1e-5)
  assert float(masked_accuracy(jnp.asarray(logits), jnp.asarray(labels), jnp.asarray(mask))
               ) == pytest.approx((logits.argmax(-1) == labels)[counted].mean())
  # Classification labels take the per-image path, unchanged.
  flat = rng.normal(size=(4, 3)).astype(np.float32)
  y = np.array([0, 2, 1, 1])
  np.testing.assert_allclose(per_example_cross_entropy(jnp.asarray(flat), jnp.asarray(y)),
                             optax.softmax_cross_entropy_with_integer_labels(flat, y), rtol=1e-6)


def test_the_train_step_crops_and_flips_image_and_mask_together():
  """A mask computed from its image (class = brightness // 64) must still be that function of the
  augmented image at every non-void pixel: any misalignment breaks it."""
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (6, 8, 10, 3)).astype(np.uint8)
  masks = (images[..., 0] // 64).astype(np.uint8)
  spec = ImageSpec((8, 10, 3), np.zeros(3, np.float32), np.ones(3, np.float32), flip=True)
  net = make_task(CLASSES, masks, _config()).head()
  trainer = Trainer(net, None, common.train(crop_pad=3, batch_size=6), spec,
                    sharding.make_mesh())
  idx = jnp.arange(6)
  seen_shift = False
  for seed in range(4):
    x, y = jax.jit(trainer.prepare_labeled)(jax.random.key(seed), jnp.asarray(images),
                                            jnp.asarray(masks), idx)
    chex.assert_shape(x, (6, 8, 10, 3))
    chex.assert_type(y, jnp.uint8)
    x, y = np.asarray(x), np.asarray(y)
    pixels = np.round(x[..., 0] * 255).astype(np.int64)  # mean 0, std 1: x = image / 255
    real = y != IGNORE
    np.testing.assert_array_equal(y[real], pixels[real] // 64)
    seen_shift |= bool((~real).any())  # padding is void
  assert seen_shift


def _config(**segmentation):
  config = tiny_config('random')
  common.segmentation(config, 'mask_folder')
  config.model.name = 'small_fcn'
  config.segmentation.update(segmentation)
  return config


def test_masks_survive_the_pool_and_a_checkpoint(tmp_path):
  masks = np.random.default_rng(4).integers(0, 3, (3, 5, 4)).astype(np.uint8)
  pool = Pool(6, np.zeros(0, np.int64), np.zeros(0, np.int32)).add([4, 1], masks[:2])
  pool = pool.add([0], masks[2:])
  assert pool.oracle_labels.dtype == np.uint8 and pool.oracle_labels.shape == (3, 5, 4)
  ckpt = checkpoint.Checkpointer(str(tmp_path / 'ckpt'))
  ckpt.save(checkpoint.RunState(1, pool, [{'round': 0}]))
  restored = ckpt.latest().pool
  ckpt.close()
  assert restored.oracle_labels.dtype == np.uint8
  np.testing.assert_array_equal(restored.oracle_labels, masks)
  np.testing.assert_array_equal(restored.labeled, [4, 1, 0])
  with pytest.raises(ValueError, match='2 queried indices but 1 labels'):
    pool.add([2, 3], masks[:1])


def test_mc_dropout_scores_each_pixel_from_its_samples():
  rng = np.random.default_rng(5)
  logits = rng.normal(size=(2, 6, 3, 4, 5)).astype(np.float32)  # [B, T, H, W, K]
  got = mc_dropout.per_pixel(mc_dropout.SCORES['bald'], jnp.asarray(logits))
  chex.assert_shape(got, (2, 3, 4))
  for b, i, j in ((0, 0, 0), (1, 2, 3), (1, 0, 2)):
    want = mc_dropout.SCORES['bald'](jnp.asarray(logits[b:b + 1, :, i, j]))[0]
    assert float(got[b, i, j]) == pytest.approx(float(want), rel=1e-5)


def _mask_folder(root, n=40, size=16, seed=0):
  """Generated images whose mask follows their colour: dark background, red and green blocks."""
  rng = np.random.default_rng(seed)
  os.makedirs(root / 'images')
  os.makedirs(root / 'masks')
  colours = np.array([[20, 20, 20], [220, 30, 30], [30, 200, 40]], np.uint8)
  for i in range(n):
    mask = np.zeros((size, size), np.uint8)
    for _ in range(2):
      c = rng.integers(1, 3) if i % 5 else 1  # every fifth image holds no green
      y, x = rng.integers(0, size - 6, 2)
      mask[y:y + 6, x:x + 6] = c
    image = colours[mask] + rng.integers(0, 20, (size, size, 3)).astype(np.uint8)
    mask[0, :] = IGNORE  # a void row
    Image.fromarray(image).save(root / 'images' / f'{i:03d}.png')
    Image.fromarray(mask, 'L').save(root / 'masks' / f'{i:03d}.png')
  return str(root)


@pytest.fixture(scope='module')
def mask_folder(tmp_path_factory):
  return _mask_folder(tmp_path_factory.mktemp('masks'))


def _segmentation_config(path, strategy, **overrides):
  config = _config()
  config.dataset.path = path
  config.dataset.classes = CLASSES
  config.dataset.max_train = None
  config.dataset.max_test = None
  config.initial_pool.size = 8
  config.budget = 6
  config.model.width = 4
  config.train = common.train(optimizer='adam', learning_rate=1e-2, weight_decay=0.0,
                              momentum=0.0, epochs=1, batch_size=8, crop_pad=0)
  config.eval_batch_size = 16
  config.strategy.name = strategy
  s = config.strategy
  s.mc_dropout.num_mc_samples = 3
  s.mc_dropout.mc_batch_size = 8
  s.mal.train = config.train.copy_and_resolve_references()
  s.mal.conv_discriminator_width = 4
  s.pal.scoring_model.name = 'small_fcn'
  s.pal.scoring_train = config.train.copy_and_resolve_references()
  s.pal.finetune = config.train.copy_and_resolve_references()
  for key, value in overrides.items():
    node = config
    *path_, last = key.split('.')
    for part in path_:
      node = node[part]
    node[last] = value
  return config


# Entropy runs on the real CamVid slice below.
@pytest.mark.parametrize('strategy', ['bald', 'mal', 'pal'])
def test_two_rounds_of_a_strategy_on_generated_masks(tmp_path, mask_folder, strategy):
  config = _segmentation_config(mask_folder, strategy)
  records = experiment.run(config, str(tmp_path / 'run'))
  assert [r['num_labeled'] for r in records] == [8, 14] and records[0]['query_size'] == 6
  for r in records:
    assert r['metric'] == 'test_miou' and 0 <= r['test_miou'] <= 1
    assert 0 <= r['test_pixel_accuracy'] <= 1 and len(r['test_per_class_iou']) == 3
    assert np.isfinite(r['train_loss'])
  # The query's class counts are pixels: 6 images of 16x16 less their void row.
  assert sum(records[0]['query_class_counts']) == 6 * 15 * 16
  pool = checkpoint.Checkpointer(str(tmp_path / 'run' / 'checkpoints')).latest().pool
  assert pool.oracle_labels.shape == (14, 16, 16)
  with open(tmp_path / 'run' / 'results.jsonl') as f:
    assert json.loads(f.readline())['metric'] == 'test_miou'


@pytest.mark.parametrize('mode', ['annotations', 'images'])
def test_the_biased_pool_holds_no_pixel_of_the_excluded_classes(tmp_path, mask_folder, mode):
  config = _segmentation_config(mask_folder, 'random', **{
      'initial_pool.exclude_classes': (2,), 'initial_pool.size': 4,
      'segmentation.biased_pool': mode})
  parts = experiment.build(config)
  state = experiment.initial_state(config, parts.pool_data, parts.oracle, parts.initial_size,
                                   parts.mesh, parts.task)
  assert state.pool.num_labeled == 4
  assert not (state.pool.oracle_labels == 2).any()
  truth = parts.dataset.train_labels[state.pool.labeled]
  if mode == 'annotations':  # the same images as without a bias, green pixels made void
    unbiased = _segmentation_config(mask_folder, 'random', **{'initial_pool.size': 4})
    plain = experiment.initial_state(unbiased, parts.pool_data, parts.oracle, 4, parts.mesh,
                                     parts.task)
    np.testing.assert_array_equal(plain.pool.labeled, state.pool.labeled)
    np.testing.assert_array_equal(state.pool.oracle_labels, np.where(truth == 2, IGNORE, truth))
  else:  # whole images held out
    assert not (truth == 2).any()
  too_many = _segmentation_config(mask_folder, 'random', **{
      'initial_pool.exclude_classes': (1, 2), 'segmentation.biased_pool': 'images'})
  with pytest.raises(JalError, match='images without a pixel of'):
    experiment.run(too_many, str(tmp_path / 'x'))


@pytest.mark.parametrize('name', ['scal', 'dfm', 'featuresim', 'ensemble', 'bald_last_layer'])
def test_strategies_that_do_not_apply_to_segmentation_refuse_in_one_line(tmp_path, mask_folder,
                                                                       name):
  with pytest.raises(JalError, match='segmentation'):
    experiment.run(_segmentation_config(mask_folder, name), str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')


@pytest.mark.parametrize('overrides,message', [
    ({'oracle.noise_rate': 0.2}, 'not defined for masks'),
    ({'model.name': 'resnet18'}, 'is a classification backbone'),
    ({'evaluation.blur_severity': 2}, 'defined for classification'),
    ({'dataset.classes': ()}, "needs config.dataset.path"),
])
def test_bad_segmentation_settings_are_one_line(tmp_path, mask_folder, overrides, message):
  with pytest.raises(JalError, match=message):
    experiment.run(_segmentation_config(mask_folder, 'random', **overrides), str(tmp_path / 'r'))


def test_the_comparison_summary_is_in_miou(tmp_path):
  records = {s: {seed: [{'num_labeled': n, 'test_miou': v + seed / 100, 'metric': 'test_miou',
                         'query_class_counts': [10, 20, 30]} for n, v in ((8, 0.2), (14, 0.3))]
                 for seed in (0, 1)} for s in ('random', 'pal')}
  summary = comparison.summarize(records)
  assert summary['pal']['metric'] == 'test_miou'
  np.testing.assert_allclose(summary['pal']['accuracy_mean'], [0.205, 0.305])


CAMVID = os.path.join(os.environ.get('JAL_DATA_DIR', ''), 'camvid.zip')


@pytest.mark.skipif(not os.path.isfile(CAMVID), reason='needs JAL_DATA_DIR with camvid.zip')
def test_two_rounds_on_a_slice_of_the_real_camvid(tmp_path):
  from configs import camvid
  config = camvid.get_config('runlocal')
  config.dataset.image_size = 32
  config.dataset.max_train = 40
  config.dataset.max_test = 20
  config.initial_pool.size = 10
  config.budget = 10
  config.num_rounds = 2
  config.model.width = 4
  config.train.epochs = 2
  config.strategy.name = 'entropy'
  records = experiment.run(config, str(tmp_path / 'run'))
  assert [r['num_labeled'] for r in records] == [10, 20]
  assert all(0 < r['test_miou'] <= 1 for r in records)
  assert len(records[0]['test_per_class_iou']) == 11
  assert os.path.isfile(tmp_path / 'run' / 'accuracy.png')
