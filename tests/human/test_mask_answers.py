"""A person segments: a segmentation labeling project answered with masks, round after round,
from a PNG folder, and from the Label Studio and CVAT exports the real tools wrote
(tests/fixtures/masks); the answers stored before they are used, one line for a bad file."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from configs import label_masks
from jal import checkpoint, experiment, predict
from jal.errors import JalError
from jal.human import mask_files
from jal.learner import Learner

FIXTURES = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'masks')
# The fixtures' classes, in jal's order (tests/fixtures/masks/README.md).
FIXTURE_CLASSES = ('road', 'car', 'person', 'sky')


def _config(path, classes, **overrides):
  config = label_masks.get_config('runlocal')
  config.dataset.path = str(path)
  config.dataset.classes = classes
  config.dataset.image_size = 8
  config.train.epochs = 1
  for key, value in overrides.items():
    node = config
    *parts, last = key.split('.')
    for part in parts:
      node = node[part]
    node[last] = value
  return config


def _project(root, n=10):
  """Images whose truth is known to the test: the mask is 1 where the image is bright."""
  rng = np.random.default_rng(0)
  os.makedirs(root / 'unlabeled')
  os.makedirs(root / 'test' / 'images')
  os.makedirs(root / 'test' / 'masks')
  truth = {}
  for i in range(n + 3):
    mask = (rng.random((10, 12)) < 0.4).astype(np.uint8)
    image = np.repeat((mask * 200 + 20)[..., None], 3, axis=-1).astype(np.uint8)
    if i < n:
      Image.fromarray(image).save(root / 'unlabeled' / f'im{i}.png')
      truth[f'im{i}'] = mask
    else:
      Image.fromarray(image).save(root / 'test' / 'images' / f't{i}.png')
      Image.fromarray(mask, 'L').save(root / 'test' / 'masks' / f't{i}.png')
  return truth


def _answer(workdir, truth, out, leave=0, only_left=False):
  """Paints the waiting query's images as a person would, one PNG mask per image, leaving the
  first ``leave`` unpainted (or painting only those with ``only_left``)."""
  folder = sorted(os.listdir(workdir / 'queries'))[-1]
  os.makedirs(out)
  with open(workdir / 'queries' / folder / 'query.csv') as f:
    stems = [os.path.splitext(os.path.basename(line.split(',')[0]))[0] for line in f][1:]
  for stem in (stems[:leave] if only_left else stems[leave:]):
    Image.fromarray(truth[stem], 'L').save(out / f'{stem}.png')
  return str(out)


def test_a_person_segments_three_rounds_with_png_masks(tmp_path):
  truth = _project(tmp_path / 'project')
  config = _config(tmp_path / 'project', ('dark', 'bright'))
  run = tmp_path / 'run'
  assert experiment.run(config, str(run)) == []  # round 0's query waits for a person
  query = run / 'queries' / 'round_0'
  with open(query / 'label_config.xml') as f:
    assert '<BrushLabels' in f.read()
  with open(query / 'tasks.json') as f:
    assert len(json.load(f)) == 4
  records = experiment.run(config, str(run), labels=_answer(run, truth, tmp_path / 'a0', 1))
  state = checkpoint.Checkpointer(str(run / 'checkpoints')).latest()
  assert records == [] and len(state.pending['answered']) == 3  # one left: it stays queued
  experiment.run(config, str(run), labels=_answer(run, truth, tmp_path / 'a0b', 1, True))
  records = experiment.run(config, str(run), labels=_answer(run, truth, tmp_path / 'a1'))
  # The last query answered from Python, as arrays (jal.learner).
  learner = Learner(config, str(run))
  waiting = learner.query()
  assert len(waiting) == 3 and all(w['predicted'] == '' for w in waiting)
  assert learner.teach({w['path']: truth[os.path.splitext(os.path.basename(w['path']))[0]]
                        for w in waiting}) == []
  records = learner.records
  assert [r['num_labeled'] for r in records] == [4, 7, 10]
  assert all(r['metric'] == 'test_miou' and 0 <= r['test_miou'] <= 1 for r in records)
  state = checkpoint.Checkpointer(str(run / 'checkpoints')).latest()
  paths = sorted(f'unlabeled/{s}.png' for s in truth)
  for index, mask in zip(state.pool.labeled, state.pool.oracle_labels):
    stem = os.path.splitext(os.path.basename(paths[index]))[0]
    want = np.asarray(Image.fromarray(truth[stem]).resize((8, 8), Image.NEAREST))
    np.testing.assert_array_equal(mask, want)  # the person's mask, resized by nearest
  stored = sorted(os.listdir(run / 'labels'))
  assert len(stored) == 4 and all(os.listdir(run / 'labels' / s) for s in stored)
  # The last task model's masks, at each image's own size, in the format --labels reads.
  paths, _, probabilities = predict.predict(str(run), str(tmp_path / 'project' / 'unlabeled'))
  assert probabilities.shape == (10, 8, 8, 2)
  predict.write_masks(str(tmp_path / 'predicted'), str(tmp_path / 'project' / 'unlabeled'),
                      paths, probabilities)
  back = mask_files.read_png_masks(str(tmp_path / 'predicted'), ('dark', 'bright'))
  assert sorted(back) == sorted(truth) and back['im0'].shape == (10, 12)


@pytest.fixture
def fixture_project(tmp_path):
  shutil.copytree(os.path.join(FIXTURES, 'project'), tmp_path / 'project')
  return tmp_path / 'project'


def _first_query_of_everything(fixture_project, tmp_path):
  config = _config(fixture_project, FIXTURE_CLASSES, **{'initial_pool.size': 5, 'num_rounds': 1})
  run = tmp_path / 'run'
  experiment.run(config, str(run))
  return config, run


def test_label_studio_brush_export_answers_a_segmentation_query(fixture_project, tmp_path):
  pytest.importorskip('label_studio_converter')
  config, run = _first_query_of_everything(fixture_project, tmp_path)
  records = experiment.run(config, str(run),
                           labels=os.path.join(FIXTURES, 'label_studio', 'export.json'))
  assert records == []  # img3 (cancelled) and img4 (not annotated) stay queued
  state = checkpoint.Checkpointer(str(run / 'checkpoints')).latest()
  expected = np.load(os.path.join(FIXTURES, 'expected.npz'))
  paths = ('unlabeled/img0.png', 'unlabeled/img1.png', 'unlabeled/img3.png',
           'unlabeled/img4.png', 'unlabeled/sub/img2.png')
  got = {os.path.splitext(os.path.basename(paths[i]))[0]: m
         for i, m in zip(state.pool.labeled, state.pool.oracle_labels)}
  assert sorted(got) == ['img0', 'img1', 'img2'] and state.imports[-1]['kind'] == 'masks'
  for stem, mask in got.items():
    want = np.asarray(Image.fromarray(expected[stem]).resize((8, 8), Image.NEAREST))
    np.testing.assert_array_equal(mask, want)
  # CVAT's export of the same masks repeats answers already given: nothing new, one line.
  with pytest.raises(JalError, match='answers none of the 2 images waiting'):
    experiment.run(config, str(run),
                   labels=os.path.join(FIXTURES, 'cvat', 'segmentation_mask.zip'))


def test_cvat_segmentation_mask_export_answers_a_segmentation_query(fixture_project, tmp_path):
  config, run = _first_query_of_everything(fixture_project, tmp_path)
  experiment.run(config, str(run),
                 labels=os.path.join(FIXTURES, 'cvat', 'segmentation_mask.zip'))
  state = checkpoint.Checkpointer(str(run / 'checkpoints')).latest()
  assert state.pool.num_labeled == 3 and state.pool.oracle_labels.dtype == np.uint8
  stored = os.listdir(run / 'labels')
  assert len(stored) == 1 and stored[0].endswith('segmentation_mask.zip')


def test_a_mask_for_an_image_outside_the_query_is_one_line_and_writes_nothing(tmp_path):
  truth = _project(tmp_path / 'project')
  config = _config(tmp_path / 'project', ('dark', 'bright'))
  run = tmp_path / 'run'
  experiment.run(config, str(run))
  folder = run / 'queries' / 'round_0'
  with open(folder / 'query.csv') as f:
    queried = {os.path.splitext(os.path.basename(l.split(',')[0]))[0] for l in f}
  other = next(s for s in sorted(truth) if s not in queried)
  os.makedirs(tmp_path / 'bad')
  Image.fromarray(truth[other], 'L').save(tmp_path / 'bad' / f'{other}.png')
  Image.fromarray(np.zeros((10, 12), np.uint8), 'L').save(tmp_path / 'bad' / 'nothing.png')
  before = sorted(os.listdir(run))
  with pytest.raises(JalError, match="not in round 0's query"):
    experiment.run(config, str(run), labels=str(tmp_path / 'bad'))
  assert sorted(os.listdir(run)) == before and not os.path.exists(run / 'labels')
