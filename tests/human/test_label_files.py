"""Label files as the real tools write them (jal.human.label_files): a CVAT ImageNet export made
by Datumaro's exporter (the code CVAT runs; tests/fixtures/cvat/README.md), and Label Studio's
JSON and JSON-MIN exports from a running Label Studio server (tests/fixtures/label_studio/),
each read and matched to the query whose answers they hold."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from conftest import REPO
from jal import pool as pool_lib
from jal.data import project
from jal.human import answers, label_files, query

FIXTURES = os.path.join(REPO, 'tests', 'fixtures')
CLASSES = ('airplane', 'cat')


def _truth(path):
  with open(path, newline='') as f:
    return {row['path']: row['label'] for row in csv.DictReader(f)}


def _decide(kind_dir, export, pending_paths=None):
  """The decision of ``export`` against a query of every image of the fixture's project."""
  proj = project.read_project(os.path.join(kind_dir, 'project'), CLASSES)
  paths = proj.train_paths
  indices = tuple(range(len(paths))) if pending_paths is None else tuple(
      paths.index(p) for p in pending_paths)
  none = (None,) * len(indices)
  pending = query.Pending(1, indices, none, none, none)
  empty = pool_lib.Pool(len(paths), np.zeros(0, np.int64), np.zeros(0, np.int32))
  read = label_files.read(export, 'skip')
  return read, paths, answers.resolve(read, pending, empty, paths, CLASSES, 'skip',
                                      run_id=_run_id(export))


def _run_id(export):
  # Label Studio tasks carry the jal_run of the tasks.json they were made from.
  read = label_files.read(export, 'skip')
  runs = {a.run for a in read.answers if a.run}
  return runs.pop() if runs else 'any'


def test_a_cvat_imagenet_export_gives_the_annotators_labels():
  folder = os.path.join(FIXTURES, 'cvat')
  read, paths, decision = _decide(folder, os.path.join(folder, 'imagenet_export.zip'))
  assert read.kind == 'cvat-imagenet'
  truth = _truth(os.path.join(folder, 'answers.csv'))
  got = {paths[i]: CLASSES[k] for i, k in decision.labeled}
  got.update({paths[i]: 'skip' for i in decision.skipped})
  assert got == truth


LABEL_STUDIO = os.path.join(FIXTURES, 'label_studio')
EXPORTS = ['export.json', 'export_min.json']


def _answers_of(decision, paths):
  got = {paths[i]: CLASSES[k] for i, k in decision.labeled}
  got.update({paths[i]: 'skip' for i in decision.skipped})
  return got


@pytest.mark.parametrize('export', EXPORTS)
def test_label_studio_exports_give_the_annotators_labels(export):
  read, paths, decision = _decide(LABEL_STUDIO, os.path.join(LABEL_STUDIO, 'full', export))
  assert read.kind == ('label-studio-json' if export == 'export.json' else
                       'label-studio-json-min')
  assert _answers_of(decision, paths) == _truth(os.path.join(LABEL_STUDIO, 'full', 'answers.csv'))


@pytest.mark.parametrize('export', EXPORTS + ['export_all_tasks.json',
                                              'export_min_all_tasks.json'])
def test_a_partial_label_studio_export_leaves_the_unannotated_queued(export):
  """Label Studio's Skip (a cancelled annotation) is a skip in JSON; JSON-MIN has no row for it,
  so there the image stays queued like an unannotated one."""
  _, paths, decision = _decide(LABEL_STUDIO, os.path.join(LABEL_STUDIO, 'partial', export))
  expected = {'unlabeled/a/img0.png': 'cat', 'unlabeled/b/img3.png': 'airplane',
              'unlabeled/b/img5.png': 'skip'}
  if 'min' not in export:
    expected['unlabeled/a/img1.png'] = 'skip'  # cancelled in Label Studio
  assert _answers_of(decision, paths) == expected


@pytest.mark.parametrize('export', EXPORTS)
def test_two_annotators_who_disagree_are_one_line(export):
  from jal.errors import JalError
  path = os.path.join(LABEL_STUDIO, 'conflict', export)
  with pytest.raises(JalError, match='answers unlabeled/a/img0.png again with another label'):
    _decide(LABEL_STUDIO, path)


def test_jal_writes_the_label_config_the_fixture_was_made_with():
  with open(os.path.join(LABEL_STUDIO, 'queries', 'round_1', 'label_config.xml')) as f:
    assert f.read() == query.label_config(CLASSES, 'skip')
