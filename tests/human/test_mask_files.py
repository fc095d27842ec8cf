"""Segmentation answers as the real tools write them (jal.human.mask_files): a folder of PNG
masks (Pillow), CVAT's "Segmentation mask 1.1" export (Datumaro's voc_segmentation exporter, the
code CVAT runs) and Label Studio brush annotations exported by a running Label Studio server
(tests/fixtures/masks/README.md, experiments/make_mask_fixtures.py). Each reader must give
exactly the masks the generation script painted (expected.npz)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import types
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from jal.errors import JalError
from jal.human import mask_files

FIXTURES = os.path.join(REPO, 'tests', 'fixtures', 'masks')
PNG = os.path.join(FIXTURES, 'png')
CVAT = os.path.join(FIXTURES, 'cvat', 'segmentation_mask.zip')
CVAT_IMAGES = os.path.join(FIXTURES, 'cvat', 'segmentation_mask_with_images.zip')
LS = os.path.join(FIXTURES, 'label_studio', 'export.json')
LS_MIN = os.path.join(FIXTURES, 'label_studio', 'export_min.json')
LS_CONFLICT = os.path.join(FIXTURES, 'label_studio', 'conflict.json')
LS_CONFLICT_MIN = os.path.join(FIXTURES, 'label_studio', 'conflict_min.json')
ANSWERED = ('img0', 'img1', 'img2')
SIZES = {'img0': (12, 16), 'img1': (12, 16), 'img2': (10, 14)}


def _expected():
  with np.load(os.path.join(FIXTURES, 'expected.npz')) as f:
    return tuple(f['classes'].tolist()), {k: f[k] for k in f.files if k != 'classes'}


CLASSES, EXPECTED = _expected()


def _converter():
  """Skips where Label Studio's converter (the optional extra) is not installed."""
  return pytest.importorskip('label_studio_converter.brush',
                             reason='pip install label-studio-converter==0.0.59')


def _same(got, expected=None):
  expected = EXPECTED if expected is None else expected
  assert list(got) == list(expected)
  for stem, mask in got.items():
    assert mask.dtype == np.uint8 and mask.shape == expected[stem].shape, stem
    np.testing.assert_array_equal(mask, expected[stem], err_msg=stem)


def _remapped(order):
  """EXPECTED with jal's classes given in ``order`` (extra names allowed)."""
  lookup = np.full(256, 255, np.uint8)
  for i, name in enumerate(CLASSES):
    lookup[i] = order.index(name)
  return {k: lookup[v] for k, v in EXPECTED.items()}


def _raises(match, fn, *args, **kwargs) -> str:
  with pytest.raises(JalError, match=match) as e:
    fn(*args, **kwargs)
  message = str(e.value)
  assert '\n' not in message
  return message


def _unzip(src, tmp_path) -> str:
  out = os.path.join(tmp_path, 'export')
  with zipfile.ZipFile(src) as z:
    z.extractall(out)
  return out


def _write_json(tmp_path, data, name='export.json') -> str:
  path = os.path.join(tmp_path, name)
  with open(path, 'w', encoding='utf-8') as f:
    json.dump(data, f)
  return path


def _load(path):
  with open(path, encoding='utf-8') as f:
    return json.load(f)


# --- The fixtures ---------------------------------------------------------------------------


def test_expected_masks_are_what_the_generation_script_paints():
  spec = importlib.util.spec_from_file_location(
      'make_mask_fixtures', os.path.join(REPO, 'experiments', 'make_mask_fixtures.py'))
  script = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(script)
  assert script.CLASSES == CLASSES
  painted = {script.stem(p): script.paint(layers) for p, layers in script.layers().items()}
  _same(painted)
  assert set(EXPECTED) == set(ANSWERED)
  # Every class and void appear; img1's PNG is mode P (palette indices are the classes).
  assert set(np.unique(np.concatenate([m.ravel() for m in EXPECTED.values()]))) == {
      0, 1, 2, 3, 255}
  assert Image.open(os.path.join(PNG, 'img1.png')).mode == 'P'
  assert Image.open(os.path.join(PNG, 'img0.png')).mode == 'L'


def test_the_cvat_fixture_has_cvats_segmentation_mask_layout():
  with zipfile.ZipFile(CVAT) as z:
    names = z.namelist()
    labelmap = z.read('labelmap.txt').decode()
    assert Image.open(z.open('SegmentationClass/img0.png')).mode == 'RGB'
  assert names[:2] == ['labelmap.txt', 'ImageSets/Segmentation/default.txt']
  assert 'SegmentationClass/sub/img2.png' in names and 'SegmentationObject/img0.png' in names
  assert not any(n.startswith('SegmentationClass/img3') for n in names)  # not annotated
  assert labelmap.splitlines()[:2] == ['# label:color_rgb:parts:actions', 'background:0,0,0::']


# --- PNG folder -----------------------------------------------------------------------------


def test_a_png_folder_gives_the_painted_masks():
  _same(mask_files.read_png_masks(PNG, CLASSES))
  _same(mask_files.read_mask_answers(PNG, CLASSES))


def test_a_png_folder_takes_more_classes_and_leaves_other_files(tmp_path):
  folder = shutil.copytree(PNG, os.path.join(tmp_path, 'masks'))
  for name in ('README.txt', '.hidden.png'):
    with open(os.path.join(folder, name), 'w') as f:
      f.write('not a mask')
  _same(mask_files.read_png_masks(folder, CLASSES + ('tree',)))


def test_a_png_value_outside_the_classes_is_an_error():
  message = _raises('value 3 at 48 pixel', mask_files.read_png_masks, PNG, CLASSES[:3])
  assert 'img0.png' in message and '0..2, 255 for void' in message


@pytest.mark.parametrize('mode', ['RGB', 'RGBA', 'I;16'])
def test_a_png_that_is_not_one_channel_is_an_error(tmp_path, mode):
  folder = shutil.copytree(PNG, os.path.join(tmp_path, 'masks'))
  Image.fromarray(EXPECTED['img0']).convert(mode).save(os.path.join(folder, 'img0.png'))
  message = _raises(f'mode {mode}', mask_files.read_png_masks, folder, CLASSES)
  assert 'img0.png' in message and 'mode L or P' in message


def test_a_jpeg_mask_or_a_damaged_png_or_an_empty_folder_is_an_error(tmp_path):
  folder = shutil.copytree(PNG, os.path.join(tmp_path, 'masks'))
  Image.fromarray(EXPECTED['img0']).save(os.path.join(folder, 'img3.jpg'))
  _raises(r'img3.jpg: a mask must be a PNG', mask_files.read_png_masks, folder, CLASSES)
  os.remove(os.path.join(folder, 'img3.jpg'))
  with open(os.path.join(folder, 'img1.png'), 'wb') as f:
    f.write(b'\x89PNG\r\n\x1a\n truncated')
  _raises(r'img1.png: cannot decode it', mask_files.read_png_masks, folder, CLASSES)
  empty = os.path.join(tmp_path, 'empty')
  os.makedirs(empty)
  _raises('holds no <stem>.png masks', mask_files.read_png_masks, empty, CLASSES)


# --- CVAT -----------------------------------------------------------------------------------


@pytest.mark.parametrize('export', [CVAT, CVAT_IMAGES])
def test_a_cvat_export_gives_the_painted_masks(export, tmp_path):
  _same(mask_files.read_cvat_masks(export, CLASSES))
  _same(mask_files.read_mask_answers(export, CLASSES))
  folder = _unzip(export, tmp_path)  # the same, unzipped
  _same(mask_files.read_mask_answers(folder, CLASSES))
  # ... or zipped again with a top folder.
  again = os.path.join(tmp_path, 'again.zip')
  with zipfile.ZipFile(again, 'w') as z:
    for root, _, files in os.walk(folder):
      for name in files:
        full = os.path.join(root, name)
        z.write(full, 'task_7/' + os.path.relpath(full, folder).replace(os.sep, '/'))
  _same(mask_files.read_mask_answers(again, CLASSES))


def test_cvat_labels_map_to_jals_classes_by_name():
  order = ('tree', 'sky', 'person', 'road', 'car')
  _same(mask_files.read_cvat_masks(CVAT, order), _remapped(order))


def test_cvat_background_is_void_unless_a_class():
  order = ('background',) + CLASSES
  expected = {k: np.where(v == 255, 0, v + 1).astype(np.uint8) for k, v in EXPECTED.items()}
  _same(mask_files.read_cvat_masks(CVAT, order), expected)
  assert all((m == 255).any() for m in EXPECTED.values())  # void really is there


def test_a_cvat_label_jal_does_not_know_is_an_error():
  message = _raises("label 'sky' is none of jal's classes", mask_files.read_cvat_masks, CVAT,
                    ('road', 'car', 'person'))
  assert 'labelmap.txt line 6' in message and CVAT in message
  # Names are case-sensitive.
  _raises("label 'car' is none", mask_files.read_cvat_masks, CVAT, ('road', 'Car', 'person',
                                                                     'sky'))


def _edit_labelmap(tmp_path, edit) -> str:
  folder = _unzip(CVAT, tmp_path)
  path = os.path.join(folder, 'labelmap.txt')
  with open(path, encoding='utf-8') as f:
    text = f.read()
  with open(path, 'w', encoding='utf-8') as f:
    f.write(edit(text))
  return folder


def test_a_colour_not_in_the_labelmap_is_an_error(tmp_path):
  folder = _edit_labelmap(tmp_path, lambda t: t.replace('car:250,50,83', 'car:250,50,84'))
  message = _raises(r'colour 250,50,83 at 24 pixel\(s\) is no label', mask_files.read_cvat_masks,
                    folder, CLASSES)
  assert 'SegmentationClass/img0.png' in message


def test_a_bad_labelmap_is_an_error(tmp_path):
  folder = _edit_labelmap(tmp_path, lambda t: t.replace('car:250,50,83', 'car:0,0,0'))
  _raises("labels 'background' and 'car' share the colour 0,0,0", mask_files.read_cvat_masks,
          folder, CLASSES)
  folder = _edit_labelmap(tmp_path / 'b', lambda t: t.replace('car:250,50,83::', 'car 250'))
  _raises("line 3: 'car 250' is not name:r,g,b", mask_files.read_cvat_masks, folder, CLASSES)
  folder = _edit_labelmap(tmp_path / 'c', lambda t: t.replace('250,50,83', '250,50'))
  _raises("colour '250,50' of 'car' is not r,g,b", mask_files.read_cvat_masks, folder, CLASSES)
  folder = _unzip(CVAT, tmp_path / 'd')
  os.remove(os.path.join(folder, 'labelmap.txt'))
  _raises('no labelmap.txt', mask_files.read_cvat_masks, folder, CLASSES)


def test_a_cvat_mask_unlike_its_image_is_an_error(tmp_path):
  folder = _unzip(CVAT_IMAGES, tmp_path)
  Image.new('RGB', (20, 12)).save(os.path.join(folder, 'JPEGImages', 'sub', 'img2.png'))
  message = _raises('the mask is 10x14 but its image JPEGImages/sub/img2.png is 12x20',
                    mask_files.read_cvat_masks, folder, CLASSES)
  assert 'SegmentationClass/sub/img2.png' in message
  # With a size to resize to, the images' sizes do not matter.
  got = mask_files.read_cvat_masks(folder, CLASSES, size=(10, 14))
  np.testing.assert_array_equal(got['img2'], EXPECTED['img2'])


def test_a_damaged_cvat_zip_or_mask_is_an_error(tmp_path):
  bad = os.path.join(tmp_path, 'export.zip')
  with open(bad, 'wb') as f:
    f.write(b'PK\x03\x04 not really a zip')
  _raises('is not a readable zip', mask_files.read_mask_answers, bad, CLASSES)
  folder = _unzip(CVAT, tmp_path)
  with open(os.path.join(folder, 'SegmentationClass', 'img1.png'), 'wb') as f:
    f.write(b'garbage')
  _raises('SegmentationClass/img1.png: cannot decode it', mask_files.read_cvat_masks, folder,
          CLASSES)


def test_a_one_channel_cvat_mask_holds_labelmap_positions(tmp_path):
  folder = _unzip(CVAT, tmp_path)
  # labelmap.txt: background, car, person, road, sky.
  positions = np.array([3, 1, 2, 4] + [0] * 251 + [0], np.uint8)[EXPECTED['img0']]
  Image.fromarray(positions).save(os.path.join(folder, 'SegmentationClass', 'img0.png'))
  _same(mask_files.read_cvat_masks(folder, CLASSES))


# --- Label Studio ---------------------------------------------------------------------------


@pytest.mark.parametrize('export', [LS, LS_MIN])
def test_a_label_studio_export_gives_the_painted_masks(export):
  _converter()
  _same(mask_files.read_label_studio_masks(export, CLASSES))
  _same(mask_files.read_mask_answers(export, CLASSES))


def test_the_label_studio_fixture_holds_what_it_should():
  tasks = _load(LS)
  by_stem = {os.path.basename(t['data']['jal_path']): t for t in tasks}
  assert set(by_stem) == {'img0.png', 'img1.png', 'img2.png', 'img3.png'}  # img4 unannotated
  assert by_stem['img3.png']['annotations'][0]['was_cancelled']  # Skip: not answered
  results = by_stem['img0.png']['annotations'][0]['result']
  assert [r['value']['brushlabels'] for r in results] == [
      ['sky'], ['road'], ['road'], ['car'], ['person']]
  assert {r['type'] for r in results} == {'brushlabels'}
  assert {r['value']['format'] for r in results} == {'rle'}


def test_label_studio_layers_are_rgba_alpha_and_later_layers_win():
  brush = _converter()
  task = next(t for t in _load(LS) if t['data']['jal_path'].endswith('img2.png'))
  results = task['annotations'][0]['result']
  assert [r['value']['brushlabels'] for r in results] == [['car'], ['person'], ['road']]
  rgba = [brush.decode_rle(r['value']['rle']).reshape(10, 14, 4) for r in results]
  # Label Studio's layers: RGBA with R = G = B = alpha, as its frontend writes them.
  assert all((layer == layer[..., 3:]).all() for layer in rgba)
  car, person, _ = (layer[..., 3] for layer in rgba)
  assert set(np.unique(car)) == {0, 40, 255}  # an anti-aliased edge, painted too
  got = mask_files.read_label_studio_masks(LS, CLASSES)['img2']
  assert (got[car == 40] == CLASSES.index('car')).all()
  assert (got[person > 0] == CLASSES.index('person')).all()  # drawn later, over the car
  assert ((car > 0) & (person > 0)).any()
  painted = np.any([layer[..., 3] > 0 for layer in rgba], axis=0)
  assert (got[~painted] == 255).all() and (~painted).any()  # void where nothing is painted


def test_label_studio_labels_map_to_jals_classes_by_name():
  _converter()
  order = ('sky', 'person', 'tree', 'car', 'road')
  _same(mask_files.read_label_studio_masks(LS, order), _remapped(order))


def test_a_label_studio_label_jal_does_not_know_is_an_error():
  _converter()
  message = _raises("brush label 'person' is none of jal's classes",
                    mask_files.read_label_studio_masks, LS, ('road', 'car', 'sky'))
  assert 'task 1 (unlabeled/img0.png)' in message and LS in message
  _raises("brush label 'car' is none", mask_files.read_label_studio_masks, LS,
          ('road', 'CAR', 'person', 'sky'))


def test_a_label_studio_background_brush_paints_void(tmp_path):
  _converter()
  tasks = _load(LS)
  results = tasks[0]['annotations'][0]['result']
  results[3]['value']['brushlabels'] = ['background']  # the car, painted over the road
  got = mask_files.read_label_studio_masks(_write_json(tmp_path, tasks), CLASSES)
  expected = EXPECTED['img0'].copy()
  expected[expected == CLASSES.index('car')] = 255
  np.testing.assert_array_equal(got['img0'], expected)


def test_disagreeing_label_studio_annotations_are_an_error(tmp_path):
  _converter()
  for export in (LS_CONFLICT, LS_CONFLICT_MIN):
    message = _raises('2 annotations of this task paint different masks',
                      mask_files.read_label_studio_masks, export, CLASSES)
    assert 'unlabeled/img0.png' in message
  # Two annotations that agree (img1) are one answer.
  tasks = [t for t in _load(LS_CONFLICT) if not t['data']['jal_path'].endswith('img0.png')]
  assert len(tasks[0]['annotations']) == 2
  got = mask_files.read_label_studio_masks(_write_json(tmp_path, tasks), CLASSES)
  _same(got, {'img1': EXPECTED['img1']})


def test_a_label_studio_task_is_named_by_jal_path_else_by_its_image(tmp_path):
  _converter()
  tasks = _load(LS)
  for task in tasks:
    task['data'] = {'image': task['data']['image']}  # /data/local-files/?d=unlabeled/img0.png
  tasks[1]['data'] = {'image': '/data/upload/3/img1.png'}
  _same(mask_files.read_label_studio_masks(_write_json(tmp_path, tasks), CLASSES))
  tasks[1]['data'] = {}
  _raises('task 2: the task names no image', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)
  tasks = _load(LS)
  tasks[1]['data']['jal_path'] = 'other/img0.png'
  _raises("tasks 1 and 2 both name an image with the stem 'img0'",
          mask_files.read_label_studio_masks, _write_json(tmp_path, tasks), CLASSES)


def test_a_label_studio_rle_unlike_the_image_size_is_an_error(tmp_path):
  _converter()
  tasks = _load(LS)
  for r in tasks[0]['annotations'][0]['result']:
    r['original_width'] = 15
  _raises(r'decodes to 768 values, not 12x15x4', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)
  tasks[0]['annotations'][0]['result'][0]['original_width'] = 16
  _raises('brush regions of several image sizes', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)
  tasks = _load(LS)
  tasks[0]['annotations'][0]['result'][0]['value']['rle'] = [0, 0, 3]
  _raises('a brush RLE cannot be decoded', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)


def test_bad_label_studio_regions_are_errors(tmp_path):
  _converter()
  tasks = _load(LS)
  tasks[0]['annotations'][0]['result'][1]['value']['brushlabels'] = ['road', 'car']
  _raises('a brush region with 2 labels', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)
  tasks = _load(LS)
  tasks[0]['annotations'][0]['result'][1]['type'] = 'bitmasklabels'
  _raises('a bitmasklabels region; jal reads BrushLabels', mask_files.read_label_studio_masks,
          _write_json(tmp_path, tasks), CLASSES)
  tasks = _load(LS)
  del tasks[2]['annotations'][0]['result'][0]['original_height']
  _raises(r'task 3 \(unlabeled/sub/img2.png\): a brush region without original_width',
          mask_files.read_label_studio_masks, _write_json(tmp_path, tasks), CLASSES)


def test_a_file_that_is_no_label_studio_export_is_an_error(tmp_path):
  for text, match in (('[{"id": 1, ', 'is not valid JSON'), ('{"tasks": []}', 'a JSON list'),
                      ('', 'is empty')):
    path = os.path.join(tmp_path, 'export.json')
    with open(path, 'w') as f:
      f.write(text)
    message = _raises(match, mask_files.read_mask_answers, path, CLASSES)
    assert path in message


def test_without_the_converter_the_error_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, 'label_studio_converter', None)
  monkeypatch.setitem(sys.modules, 'label_studio_sdk', None)
  _raises(r'pip install label-studio-converter==0\.0\.59$', mask_files.read_label_studio_masks,
          LS, CLASSES)
  # An export with no brush stroke needs no decoder.
  assert mask_files.read_label_studio_masks(
      os.path.join(REPO, 'tests', 'fixtures', 'label_studio', 'full', 'export.json'),
      CLASSES) == {}


def test_label_studio_sdks_converter_serves_too(monkeypatch):
  brush = _converter()
  sdk, converter = types.ModuleType('label_studio_sdk'), types.ModuleType('converter')
  converter.brush = types.SimpleNamespace(decode_rle=brush.decode_rle)
  sdk.converter = converter
  monkeypatch.setitem(sys.modules, 'label_studio_converter', None)
  monkeypatch.setitem(sys.modules, 'label_studio_sdk', sdk)
  monkeypatch.setitem(sys.modules, 'label_studio_sdk.converter', converter)
  _same(mask_files.read_label_studio_masks(LS, CLASSES))


# --- Resizing, sizes, the dispatcher ---------------------------------------------------------


def test_size_resizes_nearest_neighbour():
  got = mask_files.read_mask_answers(PNG, CLASSES, size=(24, 32))
  for stem in ('img0', 'img1'):  # exactly twice the size: every pixel doubled
    np.testing.assert_array_equal(got[stem], EXPECTED[stem].repeat(2, 0).repeat(2, 1))
  assert got['img2'].shape == (24, 32) and got['img2'].dtype == np.uint8
  assert set(np.unique(got['img2'])) == set(np.unique(EXPECTED['img2']))
  small = mask_files.read_mask_answers(CVAT, CLASSES, size=(6, 8))
  for stem, mask in small.items():
    assert mask.shape == (6, 8)
    assert set(np.unique(mask)) <= set(np.unique(EXPECTED[stem]))  # no new values
  np.testing.assert_array_equal(small['img0'], EXPECTED['img0'][1::2, 1::2])


def test_image_sizes_are_checked_when_no_size_is_given():
  sizes = dict(SIZES)
  _same(mask_files.read_mask_answers(PNG, CLASSES, image_sizes=sizes))
  sizes['img1'] = (24, 32)
  message = _raises('the mask is 12x16 but image img1 is 24x32', mask_files.read_mask_answers,
                    PNG, CLASSES, image_sizes=sizes)
  assert 'img1.png' in message
  _raises('the mask is 12x16 but image img1 is 24x32', mask_files.read_mask_answers, CVAT,
          CLASSES, image_sizes=sizes)
  got = mask_files.read_mask_answers(PNG, CLASSES, size=(24, 32), image_sizes=sizes)
  assert {m.shape for m in got.values()} == {(24, 32)}


def test_the_dispatcher_refuses_what_it_cannot_read(tmp_path):
  _raises('no such file or folder', mask_files.read_mask_answers,
          os.path.join(tmp_path, 'missing.zip'), CLASSES)
  other = os.path.join(tmp_path, 'answers.csv')
  with open(other, 'w') as f:
    f.write('path,label\n')
  _raises('unknown kind of mask answers', mask_files.read_mask_answers, other, CLASSES)
  _raises('class names repeat', mask_files.read_mask_answers, PNG, ('road', 'road'))
  _raises('masks need 1 to 254 classes', mask_files.read_mask_answers, PNG, ())
