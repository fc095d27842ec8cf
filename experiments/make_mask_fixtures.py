r"""Regenerate tests/fixtures/masks: segmentation answers written by the real tools.

jal's human oracle reads a person's segmentation answers (a class index per
pixel, 255 void) with `jal.human.mask_files`. Its tests read files that the
labeling tools themselves wrote, so this script paints a few small masks (the
expected answers) and has each tool write them in its own format:

* ``png``: a folder of one-channel PNG masks, ``<stem>.png``, written with
  Pillow (the library jal itself reads them with): ``img0`` and ``img2`` in
  mode L, ``img1`` in mode P with the Pascal VOC palette (as VOC's own
  ``SegmentationClass`` and labelme2voc write them: the palette index is the
  class index).
* ``cvat``: CVAT's "Segmentation mask 1.1" export. CVAT
  (``cvat/apps/dataset_manager/formats/mask.py``) builds a Datumaro dataset
  from the task, applies ``polygons_to_masks``, ``boxes_to_masks`` and
  ``merge_instance_segments``, calls
  ``dataset.export(tmp, 'voc_segmentation', save_images=..., apply_colormap=True,
  label_map=make_colormap(task))`` and zips ``tmp`` (``make_zip_archive``:
  ZIP_STORED, names relative to ``tmp``, no directory entries).
  ``make_colormap`` maps each task label to ``[its colour, [], []]`` and puts
  ``background`` with ``#000000`` first when the task has no such label.
  This script does the same with PyPI Datumaro's own exporter (CVAT pins its
  fork, cvat-ai/datumaro, whose VOC exporter writes the same files): one
  ``Mask`` annotation per painted layer, ``z_order`` in paint order (a later
  layer is drawn over an earlier one), the CVAT task's label colours, and
  ``save_media=False`` (CVAT's default, "Save images" off) for
  ``segmentation_mask.zip``, ``save_media=True`` for
  ``segmentation_mask_with_images.zip`` (adds ``JPEGImages/<id>.png``).
  ``img3`` has no annotation, so Datumaro writes no mask for it.
* ``label_studio``: a JSON export of brush annotations from a real Label
  Studio server. The server (started as in
  ``experiments/label_studio_roundtrip.py``, whose ``Server`` this script
  uses) gets a project with a ``BrushLabels`` interface, jal-style tasks
  (``data.image`` a local-files URL, ``jal_path``, ...), and annotations posted
  through its REST API whose ``brushlabels`` results carry RLE made by Label
  Studio's own encoder, ``label_studio_sdk.converter.brush.mask2rle``. That is
  the frontend's own representation: its ``Region2RLE`` copies each pixel's
  alpha into R, G and B before encoding (RGBA = a, a, a, a), and it shows a
  pixel as painted when alpha > 0. One layer of ``img2`` has an edge of
  alpha 40 (an anti-aliased stroke edge), which counts as painted.
  ``img3``'s annotation is cancelled (Label Studio's Skip) and ``img4`` is not
  annotated. A second project, ``conflict``, has two disagreeing annotations
  on ``img0`` and two identical ones on ``img1``. Both projects are exported
  with ``GET /api/projects/<id>/export?exportType=JSON`` (and ``JSON_MIN``),
  byte for byte.

Tools, 2026-11-30 (Python 3.11.7, Debian 12):

* png: Pillow 13.0.0, numpy 2.4.6 (jal's environment; any Python with numpy
  and Pillow will do).
* cvat: datumaro 1.13.12 from PyPI (numpy 2.4.6, pillow 12.3.0,
  opencv-python-headless 4.14.0.94) in ``/tmp/dmvenv``
  (``python3 -m venv /tmp/dmvenv && /tmp/dmvenv/bin/pip install datumaro==1.13.12``).
* label_studio: label-studio 1.23.2 with label-studio-sdk 2.1.2 (numpy 2.2.6,
  pillow 13.0.0) in ``/tmp/lsvenv``
  (``python3 -m venv /tmp/lsvenv && /tmp/lsvenv/bin/pip install label-studio==1.23.2``).

Run from the repository root (about a minute: the Label Studio server's first
start creates its database)::

  python experiments/make_mask_fixtures.py \
      --dm-python /tmp/dmvenv/bin/python --ls-python /tmp/lsvenv/bin/python

or one part with the Python that has its tool::

  /tmp/dmvenv/bin/python experiments/make_mask_fixtures.py --part cvat

Every part also writes ``expected.npz`` (``{stem: uint8 [H, W]}`` in the
class order ``CLASSES``, 255 void, plus ``classes``) and the project's images,
both the same on every run. A rerun changes the zips' member timestamps and
the Label Studio exports' ids, timestamps and ``unique_id``; the masks do not
change.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(os.path.dirname(HERE), 'tests', 'fixtures', 'masks')
VOID = 255
# jal's class order in expected.npz (the tests' class_names).
CLASSES = ('road', 'car', 'person', 'sky')
# The labeling tools' label order and colours (a CVAT task's labels, a Label
# Studio BrushLabels interface): another order than jal's, mapped by name.
TOOL_LABELS = (('sky', '#33ddff'), ('person', '#ff6037'), ('car', '#fa3253'),
               ('road', '#8c78f0'))
# The queried images: jal_path (relative to the project folder) -> (H, W).
IMAGES = {'unlabeled/img0.png': (12, 16), 'unlabeled/img1.png': (12, 16),
          'unlabeled/sub/img2.png': (10, 14), 'unlabeled/img3.png': (12, 16),
          'unlabeled/img4.png': (12, 16)}
ANSWERED = ('unlabeled/img0.png', 'unlabeled/img1.png', 'unlabeled/sub/img2.png')


def stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def _box(shape, top, bottom, left, right) -> np.ndarray:
  m = np.zeros(shape, np.uint8)
  m[top:bottom, left:right] = 255
  return m


def _disc(shape, cy, cx, r) -> np.ndarray:
  y, x = np.mgrid[:shape[0], :shape[1]]
  return (((y - cy) ** 2 + (x - cx) ** 2 <= r * r) * 255).astype(np.uint8)


def layers() -> dict[str, list[tuple[str, np.ndarray]]]:
  """Each answered image's painted layers, in paint order: ``(class, alpha uint8 [H, W])``.

  A later layer is drawn over an earlier one; pixels no layer covers are void.
  """
  s0, s2 = IMAGES['unlabeled/img0.png'], IMAGES['unlabeled/sub/img2.png']
  edge = _box(s2, 2, 8, 2, 12)
  edge[2:8, 2] = 40  # an anti-aliased edge: alpha 40 still counts as painted
  return {
      'unlabeled/img0.png': [
          ('sky', _box(s0, 0, 3, 0, 16)),
          ('road', _box(s0, 7, 12, 0, 9)),     # road in two separate strokes
          ('road', _box(s0, 9, 12, 9, 16)),
          ('car', _box(s0, 5, 9, 2, 8)),       # over the road
          ('person', _disc(s0, 6, 12, 2)),
      ],
      'unlabeled/img1.png': [
          ('sky', _box(s0, 0, 6, 0, 16)),
          ('person', _box(s0, 3, 11, 11, 14)),  # over the sky
          ('road', _box(s0, 8, 12, 0, 10)),
      ],
      'unlabeled/sub/img2.png': [
          ('car', edge),
          ('person', _box(s2, 4, 6, 5, 7)),
          ('road', _box(s2, 9, 10, 0, 14)),
      ],
  }


def paint(image_layers) -> np.ndarray:
  shape = image_layers[0][1].shape
  mask = np.full(shape, VOID, np.uint8)
  for name, alpha in image_layers:
    mask[alpha > 0] = CLASSES.index(name)
  return mask


def write_common(out: str) -> None:
  """The project's images (RGB noise) and expected.npz."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  for path, (h, w) in IMAGES.items():
    target = os.path.join(out, 'project', path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(target)
  expected = {stem(p): paint(l) for p, l in layers().items()}
  np.savez(os.path.join(out, 'expected.npz'), classes=np.array(CLASSES), **expected)


def voc_palette() -> list[int]:
  """Pascal VOC's palette (VOCdevkit's bitget colormap), 256 RGB triples flattened."""
  palette = []
  for i in range(256):
    r = g = b = 0
    c = i
    for j in range(8):
      r |= ((c >> 0) & 1) << (7 - j)
      g |= ((c >> 1) & 1) << (7 - j)
      b |= ((c >> 2) & 1) << (7 - j)
      c >>= 3
    palette += [r, g, b]
  return palette


def make_png(out: str) -> None:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = os.path.join(out, 'png')
  os.makedirs(folder, exist_ok=True)
  for path, image_layers in layers().items():
    mask = paint(image_layers)
    if stem(path) == 'img1':
      im = Image.fromarray(mask).convert('P')  # L -> P keeps the values as indices
      im.putpalette(voc_palette())
    else:
      im = Image.fromarray(mask)
    im.save(os.path.join(folder, stem(path) + '.png'))
  import PIL  # pylint: disable=g-import-not-at-top
  print(f'[png] Pillow {PIL.__version__}: {sorted(os.listdir(folder))} -> {folder}')


def make_zip_archive(src: str, dst: str) -> None:
  """CVAT's ``make_zip_archive`` (ZIP_STORED, relative names, no directory entries), sorted."""
  with zipfile.ZipFile(dst, 'w') as archive:
    for dirpath, dirnames, filenames in os.walk(src):
      dirnames.sort()
      for name in sorted(filenames):
        path = os.path.join(dirpath, name)
        archive.write(path, os.path.relpath(path, src))


def make_cvat(out: str) -> None:
  import datumaro as dm  # pylint: disable=g-import-not-at-top
  names = [n for n, _ in TOOL_LABELS]

  def hex2rgb(color):
    return tuple(int(color.lstrip('#')[i:i + 2], 16) for i in (0, 2, 4))

  # cvat/apps/dataset_manager/formats/utils.py make_colormap.
  label_map = {'background': [(0, 0, 0), [], []]} if 'background' not in names else {}
  label_map.update({n: [hex2rgb(c), [], []] for n, c in TOOL_LABELS})
  painted = layers()
  items = []
  for path in IMAGES:
    annotations = [dm.Mask(image=alpha > 0, label=names.index(name), id=z + 1, z_order=z)
                   for z, (name, alpha) in enumerate(painted.get(path, []))]
    items.append(dm.DatasetItem(id=os.path.splitext(path)[0].split('/', 1)[1],
                                media=dm.Image.from_file(os.path.join(out, 'project', path)),
                                annotations=annotations))
  folder = os.path.join(out, 'cvat')
  os.makedirs(folder, exist_ok=True)
  for name, save_media in (('segmentation_mask.zip', False),
                           ('segmentation_mask_with_images.zip', True)):
    dataset = dm.Dataset.from_iterable(items, categories=names, media_type=dm.Image)
    dataset.transform('polygons_to_masks')
    dataset.transform('boxes_to_masks')
    dataset.transform('merge_instance_segments')
    with tempfile.TemporaryDirectory() as tmp:
      dataset.export(tmp, 'voc_segmentation', save_media=save_media, apply_colormap=True,
                     label_map=label_map)
      target = os.path.join(folder, name)
      make_zip_archive(tmp, target)
    with zipfile.ZipFile(target) as z:
      print(f'[cvat] datumaro {dm.__version__}: {target}: {z.namelist()}')


def _roundtrip_module():
  spec = importlib.util.spec_from_file_location(
      'label_studio_roundtrip', os.path.join(HERE, 'label_studio_roundtrip.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def brush_label_config() -> str:
  labels = '\n'.join(f'    <Label value="{n}" background="{c}"/>' for n, c in TOOL_LABELS)
  return ('<View>\n  <Image name="image" value="$image" zoom="true"/>\n'
          f'  <BrushLabels name="tag" toName="image">\n{labels}\n  </BrushLabels>\n</View>\n')


def brush_result(name: str, alpha: np.ndarray, number: int) -> dict:
  """One brushlabels result as Label Studio's frontend submits it."""
  from label_studio_sdk.converter import brush  # pylint: disable=g-import-not-at-top
  h, w = alpha.shape
  return {'original_width': w, 'original_height': h, 'image_rotation': 0,
          'value': {'format': 'rle', 'rle': [int(v) for v in brush.mask2rle(alpha)],
                    'brushlabels': [name]},
          'id': f'brush{number}', 'from_name': 'tag', 'to_name': 'image',
          'type': 'brushlabels', 'origin': 'manual'}


def make_label_studio(out: str, label_studio: str | None) -> None:
  rt = _roundtrip_module()
  from label_studio_sdk.converter import brush  # pylint: disable=g-import-not-at-top
  folder = os.path.join(out, 'label_studio')
  os.makedirs(folder, exist_ok=True)
  config = brush_label_config()
  tasks = [{'data': {'image': '/data/local-files/?d=' + path, 'jal_path': path,
                     'jal_round': 1, 'jal_rank': rank, 'jal_run': '3f9c2a1b'}}
           for rank, path in enumerate(IMAGES)]
  with open(os.path.join(folder, 'label_config.xml'), 'w', encoding='utf-8') as f:
    f.write(config)
  with open(os.path.join(folder, 'tasks.json'), 'w', encoding='utf-8') as f:
    json.dump(tasks, f, indent=1)
  painted = layers()

  def results(path):
    return [brush_result(n, a, i) for i, (n, a) in enumerate(painted[path])]

  data_dir = tempfile.mkdtemp(prefix='jal_mask_fixtures_')
  server = rt.Server(label_studio or rt.default_label_studio(), data_dir,
                     os.path.join(out, 'project'), rt.free_port())
  try:
    took = server.start(240)
    version = server.request('GET', '/api/version').get('release', '?')
    print(f'[label studio] {version} up after {took:.1f} s; converter {brush.__name__}')
    for project_name, annotate in (('export', {
        'unlabeled/img0.png': [results('unlabeled/img0.png')],
        'unlabeled/img1.png': [results('unlabeled/img1.png')],
        'unlabeled/sub/img2.png': [results('unlabeled/sub/img2.png')],
        'unlabeled/img3.png': ['cancel']}), ('conflict', {
            # Two annotators disagree on img0 (the second paints the car as a person).
            'unlabeled/img0.png': [results('unlabeled/img0.png'),
                                   [dict(r, value=dict(r['value'], brushlabels=['person']))
                                    if r['value']['brushlabels'] == ['car'] else r
                                    for r in results('unlabeled/img0.png')]],
            # ... and agree on img1.
            'unlabeled/img1.png': [results('unlabeled/img1.png')] * 2})):
      project = server.request('POST', '/api/projects', {'title': f'jal masks {project_name}',
                                                         'label_config': config})
      pid = project['id']
      project_tasks = [t for t in tasks if project_name == 'export'
                       or t['data']['jal_path'] in annotate]
      server.request('POST', f'/api/projects/{pid}/import', project_tasks)
      listed = server.request('GET', '/api/tasks', params={'project': pid, 'fields': 'all',
                                                            'page_size': 1000})
      by_path = {t['data']['jal_path']: t['id'] for t in listed['tasks']}
      for path, annotations in annotate.items():
        for result in annotations:
          if result == 'cancel':  # Label Studio's Skip button
            server.request('POST', f'/api/tasks/{by_path[path]}/annotations',
                           {'result': [], 'was_cancelled': True}, params={'was_cancelled': 1})
          else:
            server.request('POST', f'/api/tasks/{by_path[path]}/annotations', {'result': result})
      for export_type, suffix in (('JSON', ''), ('JSON_MIN', '_min')):
        content = server.request('GET', f'/api/projects/{pid}/export',
                                 params={'exportType': export_type}, raw=True)
        target = os.path.join(folder, f'{project_name}{suffix}.json')
        with open(target, 'wb') as f:
          f.write(content)
        print(f'[label studio] {export_type}: {len(json.loads(content))} entries, '
              f'{len(content)} bytes -> {target}')
  finally:
    server.stop()
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(data_dir, ignore_errors=True)


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--part', choices=('all', 'png', 'cvat', 'label_studio'), default='all')
  parser.add_argument('--out', default=DEFAULT_OUT, help='the fixture folder')
  parser.add_argument('--dm-python', default='/tmp/dmvenv/bin/python',
                      help='a Python with datumaro (for --part all)')
  parser.add_argument('--ls-python', default='/tmp/lsvenv/bin/python',
                      help='a Python with label-studio (for --part all)')
  parser.add_argument('--label-studio', default=None, help='the label-studio program')
  args = parser.parse_args()
  out = os.path.abspath(args.out)
  os.makedirs(out, exist_ok=True)
  if args.part == 'all':
    write_common(out)
    make_png(out)
    for part, python in (('cvat', args.dm_python), ('label_studio', args.ls_python)):
      command = [python, os.path.abspath(__file__), '--part', part, '--out', out]
      if args.label_studio:
        command += ['--label-studio', args.label_studio]
      if subprocess.call(command) != 0:
        print(f'error: --part {part} with {python} failed', file=sys.stderr)
        return 1
    return 0
  write_common(out)
  {'png': lambda: make_png(out), 'cvat': lambda: make_cvat(out),
   'label_studio': lambda: make_label_studio(out, args.label_studio)}[args.part]()
  return 0


if __name__ == '__main__':
  sys.exit(main())
