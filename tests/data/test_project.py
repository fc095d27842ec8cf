"""A labeling project on disk: folders or a manifest, classes, and what is refused (jal.data.project)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jal.data import project
from jal.errors import JalError


def _image(path, size=(9, 7), value=0):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(np.full(size + (3,), value, np.uint8)).save(path)


def _project(root, unlabeled=('a.png', 'deep/er/b.jpg'), labeled=(('cat', 'c.png'),),
             test=(('cat', 't1.png'), ('dog', 't2.png'))):
  for name in unlabeled:
    _image(os.path.join(root, 'unlabeled', name))
  for cls, name in labeled:
    _image(os.path.join(root, 'labeled', cls, name))
  for cls, name in test:
    _image(os.path.join(root, 'test', cls, name), size=(20, 30))
  return str(root)


def test_folders_give_sorted_paths_minus_one_for_unlabeled_and_the_folders_classes(tmp_path):
  p = project.read_project(_project(tmp_path))
  assert p.class_names == ('cat', 'dog')
  assert p.train_paths == ('labeled/cat/c.png', 'unlabeled/a.png', 'unlabeled/deep/er/b.jpg')
  np.testing.assert_array_equal(p.train_labels, [0, -1, -1])
  assert p.test_paths == ('test/cat/t1.png', 'test/dog/t2.png')
  np.testing.assert_array_equal(p.test_labels, [0, 1])


def test_configured_classes_fix_the_order_and_every_folder_must_be_one(tmp_path):
  root = _project(tmp_path)
  p = project.read_project(root, classes=('dog', 'cat', 'bird'))
  assert p.class_names == ('dog', 'cat', 'bird')
  np.testing.assert_array_equal(p.train_labels, [1, -1, -1])
  with pytest.raises(JalError, match="class 'dog', which is not in config.dataset.classes"):
    project.read_project(root, classes=('cat', 'bird'))


def test_unlabeled_only_needs_the_classes_from_the_config(tmp_path):
  root = _project(tmp_path, labeled=(), test=())
  with pytest.raises(JalError, match='set config.dataset.classes'):
    project.read_project(root)
  assert project.read_project(root, ('a', 'b')).num_train == 2


def test_a_manifest_with_splits_and_empty_labels(tmp_path):
  _image(str(tmp_path / 'img' / 'x.png'))
  _image(str(tmp_path / 'img' / 'y.png'))
  _image(str(tmp_path / 'img' / 'z.png'))
  manifest = tmp_path / 'manifest.csv'
  manifest.write_text('path,label,split\nimg/x.png,,\nimg/y.png,dog,train\nimg/z.png,cat,test\n')
  p = project.read_project(str(manifest))
  assert p.train_paths == ('img/x.png', 'img/y.png') and p.test_paths == ('img/z.png',)
  np.testing.assert_array_equal(p.train_labels, [-1, 1])


@pytest.mark.parametrize('text,message', [
    ('file,label\nimg/x.png,\n', 'needs a header with path,label'),
    ('path,label\n../outside.png,\n', 'is outside the manifest'),
    ('path,label\nimg/missing.png,\n', 'img/missing.png does not exist'),
    ('path,label\nimg/x.png,\nimg/x.png,cat\n', 'lists img/x.png twice'),
    ('path,label,split\nimg/x.png,,test\n', 'a test image needs a label'),
    ('path,label,split\nimg/x.png,cat,val\n', "split 'val' must be train or test"),
])
def test_a_bad_manifest_is_one_line(tmp_path, text, message):
  _image(str(tmp_path / 'img' / 'x.png'))
  (tmp_path / 'manifest.csv').write_text(text)
  with pytest.raises(JalError, match=message):
    project.read_project(str(tmp_path / 'manifest.csv'), ('cat', 'dog'))


def test_bad_layouts_are_one_line(tmp_path):
  with pytest.raises(JalError, match='does not exist'):
    project.read_project(str(tmp_path / 'nope'))
  (tmp_path / 'empty').mkdir()
  with pytest.raises(JalError, match='neither unlabeled/ nor labeled/'):
    project.read_project(str(tmp_path / 'empty'))
  _image(str(tmp_path / 'flat' / 'labeled' / 'x.png'))
  with pytest.raises(JalError, match='labeled/ holds <class>/<image>'):
    project.read_project(str(tmp_path / 'flat'), ('a', 'b'))


def test_to_dataset_resizes_every_image_and_needs_a_size(tmp_path):
  p = project.read_project(_project(tmp_path))
  with pytest.raises(JalError, match='set config.dataset.image_size'):
    project.to_dataset(p, None)
  ds = project.to_dataset(p, 8)
  assert ds.train_images.shape == (3, 8, 8, 3) and ds.test_images.shape == (2, 8, 8, 3)
  assert ds.train_images.dtype == np.uint8
  np.testing.assert_array_equal(ds.train_labels, [0, -1, -1])
