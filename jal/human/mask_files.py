"""Reading a person's segmentation answers (masks) from the files labeling tools write.

For semantic segmentation a person answers each queried image with a mask: a
class index per pixel. This module reads those masks from the three kinds of
file people bring back, so that the answers enter jal the same way whatever
tool drew them, and every file is judged before anything is used:

* a folder of PNG masks, ``<stem>.png`` per image, one channel (mode L, or
  mode P whose palette indices are the class indices, as Pascal VOC writes
  them), the value a class index of jal's classes, 255 void;
* CVAT's "Segmentation mask 1.1" export (a ``.zip``, or the folder it
  unzips to): ``labelmap.txt`` (``name:r,g,b:parts:actions`` lines) and
  ``SegmentationClass/<id>.png`` in RGB, one colour per label. Colours map
  to label names through ``labelmap.txt``, names to jal's classes by name
  (case-sensitive). CVAT adds ``background`` (0, 0, 0) for unlabelled
  pixels: it is void unless jal's classes include ``background``. An image
  without any annotation has no mask in the export: it is not answered.
  With "Save images", ``JPEGImages/<id>.*`` gives each image's size;
* a Label Studio JSON (or JSON-MIN) export of ``BrushLabels`` annotations:
  each result is one label's layer, an RGBA bitmap of the image's size
  (``original_height`` x ``original_width``) in Label Studio's RLE, decoded
  with Label Studio's own converter (``label-studio-converter``, imported
  only here). A pixel is painted where the layer's alpha is above 0 (the
  labeling frontend's own test); a later result is painted over an earlier
  one; unpainted pixels are void. A cancelled annotation (Label Studio's
  Skip) or a task without brush strokes is not answered; several
  annotations of one task must agree. A task names its image by
  ``data.jal_path`` (jal's tasks.json), else by ``data.image``.

Every reader returns ``{stem: mask}``, the stem being the image's file name
without its extension, and each mask uint8 ``[H, W]`` with jal's class
indices and `IGNORE` (255) for void; with ``size`` the masks are resized to
it by nearest neighbour, so a resized mask holds only the values it had.
Every problem is one `JalError` line naming the file and the way to fix it.
Tested against files that Pillow, Datumaro (CVAT's exporter) and a Label
Studio 1.23 server wrote (``experiments/make_mask_fixtures.py``).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
import urllib.parse
import zipfile
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from PIL import Image

from jal.data import local
from jal.data.segmentation import IGNORE
from jal.errors import JalError

BACKGROUND = 'background'
# What to install for Label Studio's RLE decoder (the optional extra).
LABEL_STUDIO_CONVERTER = 'label-studio-converter==0.0.59'
_OTHER_IMAGES = ('.jpg', '.jpeg', '.webp', '.gif', '.bmp', '.tif', '.tiff')
_LABELMAP = 'labelmap.txt'
_CLASS_DIR = 'SegmentationClass'
_IMAGE_DIR = 'JPEGImages'

Size = tuple[int, int]


def read_mask_answers(path: str, class_names: Sequence[str], size: Size | None = None, *,
                      image_sizes: Mapping[str, Size] | None = None) -> dict[str, np.ndarray]:
  """Reads a person's masks from a PNG folder, a CVAT export or a Label Studio export.

  The kind is told by the path: a ``.json`` file is a Label Studio export, a
  ``.zip`` file or a folder holding ``labelmap.txt`` a CVAT "Segmentation
  mask" export, any other folder a folder of ``<stem>.png`` masks.

  Args:
    path: the file or folder.
    class_names: jal's classes, in order: the mask values 0..C-1.
    size: ``(height, width)`` to resize every mask to (nearest neighbour);
      None keeps each mask's own size.
    image_sizes: ``{stem: (height, width)}`` of the queried images; when
      given and ``size`` is None, each mask must have its image's size.

  Returns:
    ``{stem: uint8 [H, W]}``: class indices in ``class_names`` order, 255 void.

  Raises:
    JalError: a missing path, an unknown kind of file, or any error of the
      reader of that kind.
  """
  if not os.path.exists(path):
    raise JalError(f'{path}: no such file or folder; give the folder of PNG masks, the CVAT '
                   'Segmentation mask export (.zip) or the Label Studio JSON export (.json)')
  if os.path.isdir(path):
    if os.path.isfile(os.path.join(path, _LABELMAP)):
      return read_cvat_masks(path, class_names, size, image_sizes=image_sizes)
    return read_png_masks(path, class_names, size, image_sizes=image_sizes)
  ext = os.path.splitext(path)[1].lower()
  if ext == '.zip':
    return read_cvat_masks(path, class_names, size, image_sizes=image_sizes)
  if ext == '.json':
    return read_label_studio_masks(path, class_names, size, image_sizes=image_sizes)
  raise JalError(f'{path}: unknown kind of mask answers; give the folder of <stem>.png masks, '
                 "CVAT's Segmentation mask 1.1 export (.zip) or a Label Studio JSON export "
                 '(.json)')


def read_png_masks(path: str, class_names: Sequence[str], size: Size | None = None, *,
                   image_sizes: Mapping[str, Size] | None = None) -> dict[str, np.ndarray]:
  """Reads a folder of one-channel PNG masks, ``<stem>.png`` per image.

  Each PNG is mode L, or mode P whose palette indices are the values (Pascal
  VOC's masks); each value a class index below ``len(class_names)`` or 255
  (void). Only the folder's own ``.png`` files are read; hidden files and
  files that are not images are left alone.

  Args:
    path: the folder.
    class_names: jal's classes, in order.
    size: ``(height, width)`` to resize to (nearest neighbour), or None.
    image_sizes: ``{stem: (height, width)}`` of the queried images, checked
      when ``size`` is None.

  Returns:
    ``{stem: uint8 [H, W]}``, in file name order.

  Raises:
    JalError: not a folder, no PNG in it, a mask in another image format
      (JPEG compression changes values), a file that is not a one-channel PNG or cannot be
      decoded, a value >= the number of classes other than 255, a size unlike
      the image's.
  """
  names = _check_classes(class_names)
  if not os.path.isdir(path):
    raise JalError(f'{path}: not a folder; give the folder that holds the <stem>.png masks')
  masks = {}
  for name in sorted(os.listdir(path)):
    full = os.path.join(path, name)
    stem, ext = os.path.splitext(name)
    if name.startswith('.') or not os.path.isfile(full):
      continue
    if ext.lower() in _OTHER_IMAGES:
      raise JalError(f'{full}: a mask must be a PNG, not {ext} (JPEG compression changes '
                     'class values); save the mask as <stem>.png')
    if ext.lower() != '.png':
      continue
    mask = _decode_index_png(_read_bytes(full), full)
    _check_values(mask, len(names), full)
    masks[stem] = (mask, full)
  if not masks:
    raise JalError(f'{path}: the folder holds no <stem>.png masks')
  return _finish(masks, size, image_sizes)


def read_cvat_masks(path: str, class_names: Sequence[str], size: Size | None = None, *,
                    image_sizes: Mapping[str, Size] | None = None) -> dict[str, np.ndarray]:
  """Reads CVAT's "Segmentation mask 1.1" export, a ``.zip`` or its unzipped folder.

  ``labelmap.txt`` (at the top, or in one folder the zip was made from)
  gives each label's colour; each ``SegmentationClass/<id>.png`` (RGB, or P
  read through its palette; a one-channel L mask holds the label's line
  number in ``labelmap.txt``) becomes a mask of jal's classes by name. An
  image's ``<id>`` may have folders; the mask is keyed by its last part's
  stem. ``SegmentationObject/`` (instances) is not read.

  Args:
    path: the zip or folder.
    class_names: jal's classes, in order; ``background`` (CVAT's label for
      unlabelled pixels) maps to void unless it is one of them.
    size: ``(height, width)`` to resize to (nearest neighbour), or None.
    image_sizes: ``{stem: (height, width)}`` of the queried images, checked
      when ``size`` is None (as is ``JPEGImages/<id>.*``, when exported).

  Returns:
    ``{stem: uint8 [H, W]}``, in member name order.

  Raises:
    JalError: a damaged zip, no or several ``labelmap.txt``, a bad labelmap
      line, a label name jal does not know (other than ``background``), two
      labels of one colour, a colour not in the labelmap, a mask that cannot
      be decoded, two masks with one stem, a size unlike the image's.
  """
  names = _check_classes(class_names)
  files, read, close = _listing(path)
  try:
    return _finish(_cvat_masks(path, names, files, read, size is None), size, image_sizes)
  finally:
    close()


def _cvat_masks(path: str, names: tuple[str, ...], files: list[str],
                read: Callable[[str], bytes], check_images: bool
                ) -> dict[str, tuple[np.ndarray, str]]:
  labelmaps = [f for f in files if posixpath.basename(f) == _LABELMAP]
  if not labelmaps:
    raise JalError(f'{path}: no {_LABELMAP}; export the task again from CVAT as '
                   '"Segmentation mask 1.1"')
  depth = min(f.count('/') for f in labelmaps)
  labelmaps = [f for f in labelmaps if f.count('/') == depth]
  if len(labelmaps) > 1:
    raise JalError(f'{path}: several {_LABELMAP} ({", ".join(labelmaps[:3])}); give one CVAT '
                   'export at a time')
  root = posixpath.dirname(labelmaps[0])
  prefix = f'{root}/' if root else ''
  labels = _parse_labelmap(read(labelmaps[0]), f'{path} {labelmaps[0]}')
  by_name = {name: i for i, name in enumerate(names)}
  values = []
  for line, (name, _) in labels:
    if name in by_name:
      values.append(by_name[name])
    elif name == BACKGROUND:
      values.append(IGNORE)
    else:
      raise JalError(f'{path} {labelmaps[0]} line {line}: label {name!r} is none of jal\'s '
                     f'classes ({", ".join(names)}); rename the label in CVAT to one of them '
                     '(names are case-sensitive) and export again')
  colours = {}
  for (line, (name, colour)), value in zip(labels, values):
    if colour is None:
      continue
    if colour in colours:
      raise JalError(f'{path} {labelmaps[0]} line {line}: labels {colours[colour][0]!r} and '
                     f'{name!r} share the colour {_rgb(colour)}; give each label its own colour '
                     'in CVAT and export again')
    colours[colour] = (name, value)
  images = {}
  for f in files:
    if f.startswith(f'{prefix}{_IMAGE_DIR}/'):
      images[posixpath.splitext(f[len(prefix) + len(_IMAGE_DIR) + 1:])[0]] = f
  masks, seen = {}, {}
  for f in files:
    if not f.startswith(f'{prefix}{_CLASS_DIR}/') or posixpath.basename(f).startswith('.'):
      continue
    where = f'{path} {f}'
    item = f[len(prefix) + len(_CLASS_DIR) + 1:]
    item, ext = posixpath.splitext(item)
    if ext.lower() != '.png':
      raise JalError(f'{where}: not a PNG; export the task again from CVAT as "Segmentation '
                     'mask 1.1"')
    stem = posixpath.basename(item)
    if stem in seen:
      raise JalError(f'{path}: {seen[stem]} and {f} are masks of two images with the stem '
                     f'{stem!r}; give the images distinct file names')
    seen[stem] = f
    mask = _decode_colour_mask(read(f), where, colours, values, [n for _, (n, _) in labels])
    if check_images and item in images:
      height, width = _image_size(read(images[item]), f'{path} {images[item]}')
      if mask.shape != (height, width):
        raise JalError(f'{where}: the mask is {mask.shape[0]}x{mask.shape[1]} but its image '
                       f'{images[item]} is {height}x{width}; export the task again from CVAT')
    masks[stem] = (mask, where)
  return masks


def read_label_studio_masks(path: str, class_names: Sequence[str], size: Size | None = None, *,
                            image_sizes: Mapping[str, Size] | None = None
                            ) -> dict[str, np.ndarray]:
  """Reads the brush masks of a Label Studio JSON or JSON-MIN export.

  In a JSON export (a list of tasks with ``annotations``) each annotation's
  results of type ``brushlabels`` are painted in order; in JSON-MIN (one
  flat object per annotation) the values with an ``rle`` are. Each layer is
  ``value.rle`` (Label Studio's RLE of an RGBA image, decoded by Label
  Studio's converter) with one label in ``value.brushlabels``, of size
  ``original_height`` x ``original_width``; alpha > 0 is painted. A task with
  no brush layer (unannotated, cancelled, submitted empty) is not answered.

  Args:
    path: the ``.json`` export.
    class_names: jal's classes, in order; a brush label ``background`` that
      is none of them paints void.
    size: ``(height, width)`` to resize to (nearest neighbour), or None.
    image_sizes: ``{stem: (height, width)}`` of the queried images, checked
      when ``size`` is None.

  Returns:
    ``{stem: uint8 [H, W]}``, in the export's task order.

  Raises:
    JalError: Label Studio's converter is not installed (the message says
      what to ``pip install``), the file is not a Label Studio export, a
      task names no image, a region's label is none of jal's classes, a
      region with no or several labels, an unlabelled brush or a BitmaskLabels
      region, an RLE that does not decode to the image's size, layers of
      several sizes, annotations of one task that disagree, two tasks of one
      stem, a size unlike the image's.
  """
  names = _check_classes(class_names)
  tasks = _load_json(path)
  decode = None
  layers_of = {}  # task key -> (stem, where, [annotation layers])
  for number, task in enumerate(tasks, start=1):
    key = task.get('id', number)
    where = f'{path} task {key}'
    if 'annotations' in task:
      stem, where = _task_stem(task.get('data'), where)
      annotations = [[r for r in a.get('result') or () if isinstance(r, dict)]
                     for a in task.get('annotations') or () if not a.get('was_cancelled')]
      annotations = [_brush_layers(results, where) for results in annotations]
    else:  # JSON-MIN: the task's data keys and, per control, its list of values
      stem, where = _task_stem(task, where)
      annotations = [_min_layers(task, where)]
    annotations = [layers for layers in annotations if layers]
    if not annotations:
      continue
    if key in layers_of:  # JSON-MIN: one row per annotation of the task
      layers_of[key][2].extend(annotations)
    else:
      layers_of[key] = (stem, where, annotations)
  masks, seen = {}, {}
  for key, (stem, where, annotations) in layers_of.items():
    if decode is None:
      decode = _rle_decoder()
    painted = [_paint(layers, names, decode, where) for layers in annotations]
    for other in painted[1:]:
      if other.shape != painted[0].shape or not np.array_equal(other, painted[0]):
        raise JalError(f'{where}: {len(painted)} annotations of this task paint different '
                       'masks; keep one (delete the others in Label Studio) and export again')
    if stem in seen:
      raise JalError(f'{path}: tasks {seen[stem]} and {key} both name an image with the stem '
                     f'{stem!r}; give the images distinct file names')
    seen[stem] = key
    masks[stem] = (painted[0], where)
  return _finish(masks, size, image_sizes)


# ---------------------------------------------------------------------------------------------
# Shared helpers.


def _check_classes(class_names: Sequence[str]) -> tuple[str, ...]:
  names = tuple(class_names)
  if not names or len(names) >= IGNORE:
    raise JalError(f'masks need 1 to {IGNORE - 1} classes ({IGNORE} is void); got {len(names)}')
  if len(set(names)) != len(names):
    raise JalError(f'class names repeat: {", ".join(names)}; give each class one name')
  return names


def _read_bytes(path: str) -> bytes:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except OSError as e:
    raise JalError(f'{path}: cannot read it ({local.one_line(e)})') from None


def _listing(path: str) -> tuple[list[str], Callable[[str], bytes], Callable[[], None]]:
  """Every file below ``path`` ('/'-separated, sorted), a reader of their bytes, a closer."""
  if os.path.isdir(path):
    names = []
    for root, dirs, files in os.walk(path):
      dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
      names += [os.path.relpath(os.path.join(root, n), path).replace(os.sep, '/')
                for n in files if not n.startswith('.')]
    return sorted(names), lambda name: _read_bytes(os.path.join(path, name)), lambda: None
  if not os.path.exists(path):
    raise JalError(f'{path}: no such file or folder; give the CVAT Segmentation mask export')
  try:
    archive = zipfile.ZipFile(path)  # pylint: disable=consider-using-with
    names = sorted(i.filename for i in archive.infolist()
                   if not i.is_dir() and not i.filename.startswith('__MACOSX/'))
  except (OSError, zipfile.BadZipFile, EOFError) as e:
    raise JalError(f'{path} is not a readable zip ({local.one_line(e)}); export it again from '
                   'CVAT') from None

  def read(name: str) -> bytes:
    try:
      return archive.read(name)
    except (OSError, zipfile.BadZipFile, EOFError, KeyError, ValueError) as e:
      raise JalError(f'{path} {name}: cannot read it ({local.one_line(e)}); export it again '
                     'from CVAT') from None
  return names, read, archive.close


def _open_image(data: bytes, where: str) -> Image.Image:
  try:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im
  except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
    raise JalError(f'{where}: cannot decode it ({local.one_line(e)}); replace it with a good '
                   'copy') from None


def _image_size(data: bytes, where: str) -> Size:
  try:
    with Image.open(io.BytesIO(data)) as im:
      return im.height, im.width
  except (OSError, ValueError, SyntaxError) as e:
    raise JalError(f'{where}: cannot decode it ({local.one_line(e)})') from None


def _decode_index_png(data: bytes, where: str) -> np.ndarray:
  im = _open_image(data, where)
  if im.format != 'PNG':
    raise JalError(f'{where}: a {im.format} file, not a PNG; save the mask as a PNG')
  if im.mode not in ('L', 'P'):
    hint = (' (a colour mask: give it with its labelmap.txt, as CVAT exports it)'
            if im.mode in ('RGB', 'RGBA') else '')
    raise JalError(f'{where}: mode {im.mode}{hint}; a mask is one channel of class indices '
                   f'(mode L or P), {IGNORE} for void')
  return np.asarray(im, np.uint8)


def _check_values(mask: np.ndarray, num_classes: int, where: str) -> None:
  bad = (mask != IGNORE) & (mask >= num_classes)
  if bad.any():
    value = int(mask[bad][0])
    raise JalError(f'{where}: value {value} at {int(bad.sum())} pixel(s), but there are '
                   f'{num_classes} classes (0..{num_classes - 1}, {IGNORE} for void); fix the '
                   'mask')


def _rgb(colour: int) -> str:
  return f'{colour >> 16},{(colour >> 8) & 255},{colour & 255}'


def _finish(masks: dict[str, tuple[np.ndarray, str]], size: Size | None,
            image_sizes: Mapping[str, Size] | None) -> dict[str, np.ndarray]:
  """Checks each mask against its image's size, or resizes it to ``size``."""
  out = {}
  for stem, (mask, where) in masks.items():
    if size is not None:
      height, width = int(size[0]), int(size[1])
      if mask.shape != (height, width):
        mask = np.asarray(Image.fromarray(mask).resize((width, height), Image.NEAREST))
    elif image_sizes is not None and stem in image_sizes:
      height, width = image_sizes[stem]
      if mask.shape != (height, width):
        raise JalError(f'{where}: the mask is {mask.shape[0]}x{mask.shape[1]} but image '
                       f'{stem} is {height}x{width}; answer on the image at its own size')
    out[stem] = np.ascontiguousarray(mask, np.uint8)
  return out


# ---------------------------------------------------------------------------------------------
# CVAT.


def _parse_labelmap(data: bytes, where: str) -> list[tuple[int, tuple[str, int | None]]]:
  """``[(line, (name, packed RGB or None))]`` of a VOC/CVAT ``labelmap.txt``."""
  try:
    text = data.decode('utf-8-sig')
  except UnicodeDecodeError as e:
    raise JalError(f'{where}: not UTF-8 text ({local.one_line(e)}); export it again from '
                   'CVAT') from None
  labels, names = [], set()
  for line, raw in enumerate(text.splitlines(), start=1):
    entry = raw.strip()
    if not entry or entry.startswith('#'):
      continue
    fields = entry.rsplit(':', 3)
    if len(fields) != 4 or not fields[0]:
      raise JalError(f'{where} line {line}: {entry!r} is not name:r,g,b:parts:actions; export '
                     'it again from CVAT')
    name, colour = fields[0], fields[1].strip()
    if name in names:
      raise JalError(f'{where} line {line}: label {name!r} is listed twice')
    names.add(name)
    packed = None
    if colour:
      try:
        rgb = [int(c) for c in colour.split(',')]
      except ValueError:
        rgb = []
      if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise JalError(f'{where} line {line}: colour {colour!r} of {name!r} is not r,g,b '
                       '(0..255 each)')
      packed = rgb[0] << 16 | rgb[1] << 8 | rgb[2]
    labels.append((line, (name, packed)))
  if not labels:
    raise JalError(f'{where}: no labels; export the task again from CVAT')
  return labels


def _decode_colour_mask(data: bytes, where: str, colours: dict[int, tuple[str, int]],
                        values: list[int], names: list[str]) -> np.ndarray:
  im = _open_image(data, where)
  if im.mode == 'L':  # one channel: the label's position in labelmap.txt
    index = np.asarray(im, np.uint8)
    bad = index >= len(values)
    if bad.any():
      raise JalError(f'{where}: value {int(index[bad][0])} at {int(bad.sum())} pixel(s), but '
                     f'labelmap.txt lists {len(values)} labels; export the task again from CVAT')
    return np.asarray(values, np.uint8)[index]
  if im.mode not in ('RGB', 'RGBA', 'P'):
    raise JalError(f'{where}: mode {im.mode}; CVAT writes RGB class masks; export the task '
                   'again from CVAT as "Segmentation mask 1.1"')
  rgb = np.asarray(im.convert('RGB'), np.uint32)
  packed = rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]
  found, inverse = np.unique(packed, return_inverse=True)
  lookup = np.empty(len(found), np.uint8)
  for i, colour in enumerate(found.tolist()):
    if colour not in colours:
      count = int((inverse == i).sum())
      raise JalError(f'{where}: colour {_rgb(colour)} at {count} pixel(s) is no label\'s colour '
                     f'in labelmap.txt ({", ".join(names)}); export the task again from CVAT '
                     'with its labelmap.txt')
    lookup[i] = colours[colour][1]
  return lookup[inverse.reshape(packed.shape)]


# ---------------------------------------------------------------------------------------------
# Label Studio.


def _rle_decoder() -> Callable[[list[int]], np.ndarray]:
  """Label Studio's own RLE decoder (``brush.decode_rle``), imported on first use."""
  # pylint: disable=g-import-not-at-top
  try:
    from label_studio_converter import brush
  except ImportError:
    try:  # label-studio-sdk 1.0 and later carry the converter
      from label_studio_sdk.converter import brush
    except ImportError:
      raise JalError('reading Label Studio brush masks needs its converter: pip install '
                     f'{LABEL_STUDIO_CONVERTER}') from None
  return brush.decode_rle


def _load_json(path: str) -> list[dict]:
  data = _read_bytes(path)
  if not data.strip():
    raise JalError(f'{path} is empty; export the project again from Label Studio')
  try:
    tasks = json.loads(data.decode('utf-8-sig'))
  except UnicodeDecodeError as e:
    raise JalError(f'{path}: not UTF-8 text ({local.one_line(e)}); export it again from Label '
                   'Studio') from None
  except json.JSONDecodeError as e:
    raise JalError(f'{path} is not valid JSON (line {e.lineno}: {e.msg}); export it again from '
                   'Label Studio') from None
  if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
    raise JalError(f'{path}: a Label Studio export is a JSON list of tasks; this file holds '
                   'something else; export the project as JSON')
  return tasks


def _task_stem(data, where: str) -> tuple[str, str]:
  """The file stem of a task's image (``jal_path``, else ``image``), and ``where`` naming it."""
  if not isinstance(data, dict):
    data = {}
  image = data.get('jal_path')
  if not image and isinstance(data.get('image'), str):
    url = urllib.parse.urlsplit(data['image'])
    image = (urllib.parse.parse_qs(url.query).get('d') or [urllib.parse.unquote(url.path)])[0]
  image = str(image or '').replace('\\', '/')
  stem = posixpath.splitext(posixpath.basename(image))[0]
  if not stem:
    raise JalError(f'{where}: the task names no image (no data.jal_path or data.image); import '
                   "the tasks.json jal wrote, or tasks whose 'image' is the image's path")
  return stem, f'{where} ({image})'


def _layer(value: dict, kind: str, width, height, where: str) -> tuple:
  """``(label, rle, height, width)`` of one brush region, checked."""
  if kind != 'brushlabels':
    raise JalError(f'{where}: a {kind} region; jal reads BrushLabels regions (a label per '
                   'region, RLE); label the region with the BrushLabels tool')
  labels = value.get('brushlabels')
  if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
    count = len(labels) if isinstance(labels, list) else 0
    raise JalError(f'{where}: a brush region with {count} labels; give each region exactly one '
                   'class in Label Studio')
  if value.get('format', 'rle') != 'rle' or not isinstance(value.get('rle'), list):
    raise JalError(f'{where}: a brush region of format {value.get("format")!r} without an RLE '
                   'list; export the project as JSON')
  if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (width, height)):
    raise JalError(f'{where}: a brush region without original_width / original_height; export '
                   'the project again from Label Studio')
  return labels[0], value['rle'], height, width


def _brush_layers(results: list[dict], where: str) -> list[tuple]:
  layers = []
  for r in results:
    kind = str(r.get('type', '')).lower()
    if kind in ('brushlabels', 'brush', 'bitmask', 'bitmasklabels'):
      layers.append(_layer(r.get('value') or {}, kind, r.get('original_width'),
                           r.get('original_height'), where))
  return layers


def _min_layers(row: dict, where: str) -> list[tuple]:
  layers = []
  for value in row.values():
    if isinstance(value, list):
      for v in value:
        if not isinstance(v, dict):
          continue
        kind = ('brushlabels' if 'rle' in v or 'brushlabels' in v else
                'bitmasklabels' if 'imageDataURL' in v or 'bitmasklabels' in v else None)
        if kind:
          layers.append(_layer(v, kind, v.get('original_width'), v.get('original_height'),
                               where))
  return layers


def _paint(layers: list[tuple], names: tuple[str, ...], decode, where: str) -> np.ndarray:
  shapes = {(h, w) for _, _, h, w in layers}
  if len(shapes) > 1:
    raise JalError(f'{where}: brush regions of several image sizes ({sorted(shapes)}); export '
                   'the project again from Label Studio')
  height, width = shapes.pop()
  mask = np.full((height, width), IGNORE, np.uint8)
  by_name = {n: i for i, n in enumerate(names)}
  for label, rle, _, _ in layers:
    if label in by_name:
      value = by_name[label]
    elif label == BACKGROUND:
      value = IGNORE
    else:
      raise JalError(f'{where}: brush label {label!r} is none of jal\'s classes '
                     f'({", ".join(names)}); rename the label in the labeling interface '
                     '(names are case-sensitive) and export again')
    if not all(isinstance(v, int) and 0 <= v <= 255 for v in rle):
      raise JalError(f'{where}: a brush RLE holds values that are not bytes; export the project '
                     'again from Label Studio')
    try:
      pixels = np.asarray(decode(rle))
    except (ValueError, IndexError, TypeError) as e:
      raise JalError(f'{where}: a brush RLE cannot be decoded ({local.one_line(e)}); export '
                     'the project again from Label Studio') from None
    if pixels.size != height * width * 4:
      raise JalError(f'{where}: a brush RLE decodes to {pixels.size} values, not {height}x'
                     f'{width}x4 for the image\'s original size; export the project again from '
                     'Label Studio')
    mask[pixels.reshape(height, width, 4)[..., 3] > 0] = value
  return mask
