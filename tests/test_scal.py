"""Tests of SCAL, FeatureSim and DFM (paper 002) and of the optional evaluation sets.

The references are NumPy transcriptions of the papers' equations, written with
explicit loops, and scikit-learn's PCA, not from the JAX code.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sklearn.decomposition

from conftest import load_dataset, tiny_config
from jal import experiment, rng, selection
from jal.acquisition import dfm, feature_similarity
from jal.data import transforms
from jal.errors import JalError
from jal.models import ClassifierHead, MultiHeadNet, ProjectionHead, get_backbone
from jal.objectives import Batch, contrastive as losses
from jal.objectives.classification import linear_probe_loss


def _supcon_reference(z, labels, mask, temperature):
  """Eq. 1 of paper 002 (Khosla et al. Eq. 2) by loops, averaged over anchors with a positive."""
  z = np.asarray(z, np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  real = [i for i in range(len(z)) if mask[i] > 0]
  terms = []
  for i in real:
    others = [a for a in real if a != i]
    positives = [p for p in others if labels[p] == labels[i]]
    if not positives:
      continue
    denominator = sum(np.exp(z[i] @ z[a] / temperature) for a in others)
    terms.append(-np.mean([np.log(np.exp(z[i] @ z[p] / temperature) / denominator)
                           for p in positives]))
  return np.mean(terms) if terms else 0.0


@pytest.mark.parametrize('temperature', [0.07, 0.5])
def test_supervised_contrastive_loss_matches_eq_1(temperature):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(8, 5)).astype(np.float32)
  # Class 3 has a single member (no positive: not an anchor, still a negative);
  # the last row is padding.
  labels = np.array([0, 0, 1, 1, 1, 2, 3, 0], np.int32)
  mask = np.array([1, 1, 1, 1, 1, 0, 1, 0], np.float32)
  # Class 2's only member is padding too.
  got = losses.supervised_contrastive_loss(z, labels, mask, temperature)
  chex.assert_shape(got, ())
  np.testing.assert_allclose(got, _supcon_reference(z, labels, mask, temperature), rtol=1e-5)
  # The padding row and the lone member's own positives do not matter.
  z2 = z.copy()
  z2[7] = rng.normal(size=5)
  np.testing.assert_allclose(losses.supervised_contrastive_loss(z2, labels, mask, temperature),
                             got, rtol=1e-6)


def test_supervised_contrastive_loss_with_no_positive_is_zero_with_finite_gradients():
  z = jnp.asarray(np.random.default_rng(1).normal(size=(4, 3)), jnp.float32)
  labels = jnp.array([0, 1, 2, 3])
  for mask in (jnp.ones(4), jnp.array([1.0, 0, 0, 0])):
    loss, grad = jax.jit(jax.value_and_grad(losses.supervised_contrastive_loss))(z, labels, mask)
    assert loss == 0.0 and np.isfinite(np.asarray(grad)).all()
  # Two views of each image: every anchor has exactly one positive.
  two_views = jnp.concatenate([z, z + 0.1])
  loss = losses.supervised_contrastive_loss(two_views, jnp.tile(labels, 2), jnp.ones(8))
  np.testing.assert_allclose(loss, _supcon_reference(two_views, np.tile(labels, 2), np.ones(8),
                                                     0.07), rtol=1e-5)


def test_class_similarity_scores_known_answer():
  e = np.eye(4, dtype=np.float32)
  labeled = np.stack([e[0], e[0] + 0.5 * e[1], e[1], 3 * e[2]])
  labeled_labels = np.array([0, 0, 1, 2])
  candidates = np.stack([2 * e[0], e[1], e[0] + e[1], e[3], e[0]])
  predictions = np.array([0, 0, 1, 2, 3])  # class 3 has nothing labeled
  got = feature_similarity.class_similarity_scores(candidates, predictions, labeled,
                                                   labeled_labels)
  want = [1.0, 0.5 / np.sqrt(1.25), 1 / np.sqrt(2), 0.0, -np.inf]
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_class_similarity_scores_blocks_match_brute_force():
  rng = np.random.default_rng(2)
  features, labeled = rng.normal(size=(7, 6)), rng.normal(size=(5, 6))
  predictions, labels = rng.integers(0, 3, 7), rng.integers(0, 3, 5)
  unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
  cosine = unit(features) @ unit(labeled).T
  want = [max([cosine[i, j] for j in range(5) if labels[j] == predictions[i]], default=-np.inf)
          for i in range(7)]
  for block in (2, 5, 1024):  # partial blocks, one exact block, one big block
    np.testing.assert_allclose(feature_similarity.class_similarity_scores(
        features, predictions, labeled, labels, block=block), want, rtol=1e-5)


def test_per_class_lowest_known_answers():
  candidates = np.arange(100, 110)
  predictions = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
  scores = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.8, 0.4, 0.6, 0.7, 0.0])
  select = lambda k, classes=3: selection.per_class_lowest(
      scores, predictions, candidates, k, classes).tolist()
  # budget / K = 2 per class, lowest scores first.
  assert select(6) == [109, 101, 104, 103, 106, 108]
  # 7 = 2 each + 1 owed: to the class whose next in line scores lowest (class 0: 0.5).
  assert select(7) == [109, 101, 104, 103, 106, 102, 108]
  # Class 2 has only 2 candidates: 8 = 2 + 3 + 3, class 2's lack shared equally.
  assert select(8) == [109, 101, 104, 103, 106, 102, 107, 108]
  # A fourth class with no candidate: its share goes to the others (as budget 6).
  assert select(6, classes=4) == select(6)
  assert sorted(select(20)) == candidates.tolist()
  assert select(0) == []


def test_per_class_lowest_is_balanced_and_distinct_on_random_sets():
  rng = np.random.default_rng(3)
  for trial in range(20):
    n, k, budget = rng.integers(1, 60), rng.integers(1, 6), rng.integers(0, 70)
    predictions = rng.integers(0, k, n)
    scores = rng.normal(size=n)
    got = selection.per_class_lowest(scores, predictions, np.arange(n), budget, k)
    assert got.size == min(budget, n) == np.unique(got).size
    taken = np.bincount(predictions[got], minlength=k)
    available = np.bincount(predictions, minlength=k)
    # Equal shares: a class short of the largest share gave all it had.
    assert all(t == a or t >= taken.max() - 1 for t, a in zip(taken, available)), trial
    for c in range(k):  # within a class, the lowest scores
      chosen = np.isin(np.arange(n), got) & (predictions == c)
      if chosen.any() and (~chosen & (predictions == c)).any():
        assert scores[chosen].max() <= scores[~chosen & (predictions == c)].min()


def test_dfm_reconstruction_error_matches_sklearn_pca():
  rng = np.random.default_rng(4)
  dim, components = 8, 3
  features = rng.normal(size=(50, dim)) @ rng.normal(size=(dim, dim))
  labels = np.repeat([0, 1], 25)
  subspaces = dfm.fit_class_subspaces(features, labels, 3, components)
  candidates = rng.normal(size=(12, dim)) * 3
  predictions = np.array([0, 1, 2] * 4)
  got = dfm.reconstruction_errors(candidates, predictions, subspaces)
  for k in (0, 1):
    pca = sklearn.decomposition.PCA(components).fit(features[labels == k])
    rows = predictions == k
    want = np.linalg.norm(candidates[rows] - pca.inverse_transform(pca.transform(
        candidates[rows])), axis=1)
    np.testing.assert_allclose(got[rows], want, rtol=1e-8)
  assert np.isposinf(got[predictions == 2]).all()  # class 2 has no labeled example
  assert subspaces.present.tolist() == [True, True, False]


def test_dfm_caps_components_at_the_class_rank():
  e = np.eye(4)
  features = np.stack([e[0], e[0] + e[1], 2 * e[2]])
  subspaces = dfm.fit_class_subspaces(features, np.array([0, 0, 1]), 2, num_components=3)
  # Two examples span one direction; one example spans none.
  assert np.linalg.matrix_rank(subspaces.components[0]) == 1
  assert not subspaces.components[1].any()
  got = dfm.reconstruction_errors(np.stack([e[1] * 5, e[3], 2 * e[2]]), np.array([0, 1, 1]),
                                  subspaces)
  mean = e[0] + 0.5 * e[1]
  np.testing.assert_allclose(got, [np.linalg.norm((5 * e[1] - mean) * [1, 0, 1, 1]),
                                   np.linalg.norm(e[3] - 2 * e[2]), 0.0], atol=1e-12)


def test_linear_stage_trains_only_the_classifier_on_frozen_features():
  model = MultiHeadNet(get_backbone('small_cnn', width=4),
                       {'classifier': ClassifierHead(3), 'projection': ProjectionHead(8)})
  x = jnp.asarray(np.random.default_rng(5).normal(size=(4, 8, 8, 1)), jnp.float32)
  variables = jax.jit(lambda key: model.init({'params': rng.init_key(key)}, x, train=False))(
      jax.random.key(0))
  labels, mask = jnp.array([0, 1, 2, 0]), jnp.ones(4)

  def loss(params):
    return linear_probe_loss(model.apply, {**variables, 'params': params},
                             Batch(x, labels, mask), None, 0.0)

  (value, (batch_stats, metrics)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
      variables['params'])
  assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads['backbone']))
  assert all(not np.asarray(g).any() for g in jax.tree.leaves(grads['heads_projection']))
  assert np.asarray(grads['heads_classifier']['fc']['kernel']).any()
  chex.assert_trees_all_equal(batch_stats, variables['batch_stats'])
  assert metrics['loss'] == value
  out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
  np.testing.assert_allclose(np.linalg.norm(out['projection'], axis=1), 1.0, rtol=1e-5)


def test_hold_out_classes_relabels_and_returns_the_held_out_test_images():
  config = tiny_config('random')
  dataset = load_dataset(config)
  kept, ood = transforms.hold_out_classes(dataset, (1, 8))
  assert kept.num_classes == 8 and kept.class_names == tuple(
      n for i, n in enumerate(dataset.class_names) if i not in (1, 8))
  assert ood.shape[0] == np.isin(dataset.test_labels, (1, 8)).sum()
  assert kept.train_labels.max() == 7 and kept.num_train == (~np.isin(
      dataset.train_labels, (1, 8))).sum()
  np.testing.assert_array_equal(kept.test_images[kept.test_labels == 1],
                                dataset.test_images[dataset.test_labels == 2])
  with pytest.raises(JalError, match='must be distinct classes'):
    transforms.hold_out_classes(dataset, (3, 3))


def test_match_image_shape_converts_grey_and_colour():
  grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4, 1)
  colour = transforms.match_image_shape(grey, (8, 8, 3))
  chex.assert_shape(colour, (2, 8, 8, 3))
  np.testing.assert_array_equal(colour[..., 0], colour[..., 2])
  back = transforms.match_image_shape(colour, (8, 8, 1))
  np.testing.assert_array_equal(back, colour[..., :1])  # equal channels: luma is the channel


@pytest.mark.parametrize('name', ['scal', 'featuresim', 'dfm'])
def test_one_round_with_every_evaluation_metric(tmp_path, name):
  config = tiny_config(name, **{'train.epochs': 1, 'evaluation.ood_classes': (9,),
                                'evaluation.blur_severity': 2,
                                'strategy.scal.classifier_train.epochs': 2,
                                'strategy.scal.projection_dim': 8, 'strategy.dfm.components': 2})
  records = experiment.run(config, str(tmp_path))
  assert [r['query_size'] for r in records] == [20, 0]
  for record in records:
    assert 0 <= record['test_accuracy'] <= 1 and len(record['test_per_class_accuracy']) == 9
    for key in ('test_ece', 'test_brier', 'test_nll', 'test_ood_auroc', 'blurred_accuracy',
                'blurred_ece', 'labeled_sampling_bias'):
      assert np.isfinite(record[key]), key
    assert sum(record['labeled_class_counts']) == record['num_labeled']
  metrics = records[0]['train_metrics']
  if name == 'scal':
    assert set(metrics) == {'loss', 'classifier_loss', 'classifier_accuracy'}
    assert records[0]['train_loss'] == metrics['loss'] > 0
  query = records[0]['query_metrics']
  assert set(query) == ({'candidate_reconstruction_error', 'query_reconstruction_error'}
                        if name == 'dfm' else
                        {'candidate_similarity', 'query_similarity', 'query_unseen_class'})


@pytest.mark.parametrize('overrides,message', [
    ({'evaluation.blur_severity': 6}, 'severity must be an int in 1..5'),
    ({'evaluation.ood_classes': (0, 0)}, 'must be distinct classes'),
    ({'evaluation.ood_classes': (1,), 'evaluation.ood_dataset': 'mnist'}, 'not both'),
    ({'strategy.name': 'scal', 'strategy.scal.temperature': 0.0}, 'must be positive'),
    ({'strategy.name': 'dfm', 'strategy.dfm.components': 0}, 'components=0'),
])
def test_bad_evaluation_and_strategy_settings_give_one_line_errors(tmp_path, overrides,
                                                                   message):
  with pytest.raises(JalError, match=message):
    experiment.run(tiny_config('random', **overrides), str(tmp_path))
  assert not (tmp_path / 'config.json').exists()
