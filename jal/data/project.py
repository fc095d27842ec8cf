"""A labeling project: a user's own images, most of them without labels.

A project is a folder::

  unlabeled/**/<image>       the pool jal queries from (any depth)
  labeled/<class>/<image>    optional: labels the user already has
  test/<class>/<image>       optional: a labeled test split (evaluation)

or a CSV manifest with a header ``path,label`` (and optionally ``split``,
``train`` or ``test``): paths relative to the manifest's folder, an empty
label for an unlabeled image. Images may have any size and format PIL reads;
they are resized to ``config.dataset.image_size``. The class names come from
the ``labeled/`` and ``test/`` folders (or the manifest's labels) together
with ``config.dataset.classes``, and are fixed when a run starts.

The train split is every ``labeled/`` and ``unlabeled/`` image (every train
row of a manifest), in sorted path order; the label of an unlabeled image is
-1. A person answers the queries (`jal.human`), so nothing here is a ground
truth that jal would hide: ``labeled/`` is round 0's labeled pool.

A segmentation project (``masks=True``: a config with a ``segmentation``
section) is a folder::

  unlabeled/**/<image>                     the pool; a person answers with masks
  test/images/<stem>.<ext>, test/masks/<stem>.png   optional: a test split

with the class names in ``config.dataset.classes`` (mask value order, 255
void). Round 0's pool is a query to the person like every other.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from jal.data import local
from jal.data.dataset import Dataset, channel_stats
from jal.errors import JalError

UNLABELED, LABELED, TEST = 'unlabeled', 'labeled', 'test'
MANIFEST_COLUMNS = ('path', 'label')


@dataclasses.dataclass(frozen=True)
class Project:
  """Where a project's images are and what is known of them.

  Attributes:
    root: the folder the paths are relative to (the project folder, or the
      manifest's folder).
    source: the project folder or the manifest file, as given.
    class_names: the classes, in label order.
    train_paths: ``'/'``-separated paths of the train split (the pool),
      relative to ``root``, sorted.
    train_labels: int32 ``[N]``: the class of each train image, -1 where
      unlabeled.
    test_paths: paths of the test split, sorted (empty: no test split).
    test_labels: int32 ``[M]`` (a segmentation project: -1, the masks are
      ``test_masks``).
    test_masks: a segmentation project's mask file of each test image
      (relative to ``root``); empty for classification.
    segmentation: whether a person answers with masks.
  """

  root: str
  source: str
  class_names: tuple[str, ...]
  train_paths: tuple[str, ...]
  train_labels: np.ndarray
  test_paths: tuple[str, ...]
  test_labels: np.ndarray
  test_masks: tuple[str, ...] = ()
  segmentation: bool = False

  @property
  def num_train(self) -> int:
    return len(self.train_paths)


def read_project(path: str, classes: Sequence[str] = (), masks: bool = False) -> Project:
  """Lists a project's images and labels, without decoding them.

  Args:
    path: a project folder or a ``.csv`` manifest.
    classes: class names to use (``config.dataset.classes``); empty: those
      of the ``labeled/`` and ``test/`` folders (or the manifest's labels).
      When given, every class folder or label must be one of them.
    masks: a segmentation project (see the module docstring); ``classes``
      is then required.

  Returns:
    The `Project`.

  Raises:
    JalError: a missing path, an unknown layout, a class that is not in
      ``classes``, fewer than 2 classes, or no unlabeled or labeled image.
  """
  if not path:
    raise JalError("dataset 'project' needs a path: set config.dataset.path to a folder with "
                   'unlabeled/ (and optionally labeled/<class>/, test/<class>/) or a .csv '
                   'manifest of path,label')
  if not os.path.exists(path):
    raise JalError(f'labeling project {path} does not exist')
  if masks:
    return _read_segmentation_project(path, tuple(classes))
  if os.path.isfile(path):
    if not path.lower().endswith('.csv'):
      raise JalError(f'labeling project {path} is a file but not a .csv manifest; give a folder '
                     'with unlabeled/ or a CSV of path,label')
    root, rows = _read_manifest(path)
  else:
    root, rows = path, _read_folders(path)
  found = sorted({label for _, label, _ in rows if label})
  names = tuple(classes) if classes else tuple(found)
  _check_classes(path, names, found, bool(classes))
  index = {c: i for i, c in enumerate(names)}
  train = sorted((p, l) for p, l, split in rows if split == 'train')
  test = sorted((p, l) for p, l, split in rows if split == 'test')
  if not train:
    raise JalError(f'labeling project {path} has no train images: put the images to label in '
                   f'{os.path.join(path, UNLABELED)}/ (any depth)')
  return Project(
      root=root, source=path, class_names=names,
      train_paths=tuple(p for p, _ in train),
      train_labels=np.array([index[l] if l else -1 for _, l in train], np.int32),
      test_paths=tuple(p for p, _ in test),
      test_labels=np.array([index[l] for _, l in test], np.int32))


def _check_classes(path: str, names: tuple[str, ...], found: list[str], given: bool) -> None:
  if len(set(names)) != len(names):
    raise JalError(f'config.dataset.classes={list(names)} names a class twice')
  if any(not n or '/' in n or n.strip() != n for n in names):
    raise JalError(f'config.dataset.classes={list(names)}: class names must be non-empty, '
                   'without / or surrounding spaces')
  unknown = [c for c in found if c not in names]
  if unknown:
    raise JalError(f"labeling project {path} has class {unknown[0]!r}, which is not in "
                   f'config.dataset.classes={list(names)}; add it there or rename that folder')
  if len(names) < 2:
    where = ('its labeled/ and test/ folders' if not given else 'config.dataset.classes')
    raise JalError(f'labeling project {path} has {len(names)} class(es) in {where}; set '
                   "config.dataset.classes to the classes to label, e.g. "
                   "--config.dataset.classes=\"('cat','dog')\"")


def _read_folders(path: str) -> list[tuple[str, str, str]]:
  """``(path, label, split)`` of every image below the project folder."""
  rows = []
  tops = set(os.listdir(path))
  if UNLABELED not in tops and LABELED not in tops:
    raise JalError(f'labeling project {path} has neither unlabeled/ nor labeled/; put the images '
                   'to label in unlabeled/ (any depth)')
  for top, split in ((UNLABELED, 'train'), (LABELED, 'train'), (TEST, 'test')):
    folder = os.path.join(path, top)
    if not os.path.isdir(folder):
      continue
    for member in local.image_files(folder):
      parts = member.split('/')
      if top == UNLABELED:
        rows.append((f'{top}/{member}', '', split))
        continue
      if len(parts) != 2:
        raise JalError(f"unexpected file {top}/{member} in labeling project {path}: "
                       f'{top}/ holds <class>/<image>')
      rows.append((f'{top}/{member}', parts[0], split))
  return rows


def _read_manifest(path: str) -> tuple[str, list[tuple[str, str, str]]]:
  """The manifest's folder, and ``(path, label, split)`` of each row."""
  root = os.path.dirname(os.path.abspath(path))
  try:
    with open(path, newline='', encoding='utf-8-sig') as f:
      reader = csv.DictReader(f)
      columns = tuple(reader.fieldnames or ())
      if not set(MANIFEST_COLUMNS) <= set(columns):
        raise JalError(f'manifest {path} has columns {list(columns)}; it needs a header with '
                       'path,label (and optionally split)')
      rows = []
      for line, row in enumerate(reader, start=2):
        rel = _inside(root, (row['path'] or '').strip(), f'manifest {path} line {line}')
        split = (row.get('split') or 'train').strip()
        label = (row['label'] or '').strip()
        if split not in ('train', 'test'):
          raise JalError(f"manifest {path} line {line}: split {split!r} must be train or test")
        if split == 'test' and not label:
          raise JalError(f'manifest {path} line {line}: a test image needs a label')
        rows.append((rel, label, split))
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    raise JalError(f'cannot read manifest {path} ({local.one_line(e)})') from None
  seen = {}
  for rel, _, _ in rows:
    if rel in seen:
      raise JalError(f'manifest {path} lists {rel} twice')
    seen[rel] = True
  return root, rows


def _inside(root: str, rel: str, where: str) -> str:
  if not rel:
    raise JalError(f'{where}: empty path')
  full = os.path.normpath(os.path.join(root, rel))
  if os.path.commonpath([root, full]) != root:
    raise JalError(f'{where}: {rel} is outside the manifest\'s folder {root}; keep the images '
                   'below it')
  if not os.path.isfile(full):
    raise JalError(f'{where}: {rel} does not exist')
  return os.path.relpath(full, root).replace(os.sep, '/')


def _read_segmentation_project(path: str, classes: tuple[str, ...]) -> Project:
  if len(classes) < 2:
    raise JalError('a segmentation labeling project needs its class names in mask-value order: '
                   "set config.dataset.classes, e.g. \"('road','car','person')\"")
  if not os.path.isdir(path) or not os.path.isdir(os.path.join(path, UNLABELED)):
    raise JalError(f'segmentation labeling project {path} needs a folder unlabeled/ with the '
                   'images to label (and optionally test/images/ and test/masks/)')
  train = sorted(f'{UNLABELED}/{m}' for m in local.image_files(os.path.join(path, UNLABELED)))
  if not train:
    raise JalError(f'labeling project {path} has no train images: put the images to label in '
                   f'{os.path.join(path, UNLABELED)}/ (any depth)')
  test, test_masks = [], []
  images_dir = os.path.join(path, TEST, 'images')
  if os.path.isdir(images_dir):
    for member in sorted(local.image_files(images_dir)):
      stem = os.path.splitext(member)[0]
      mask = f'{TEST}/masks/{stem}.png'
      if not os.path.isfile(os.path.join(path, mask)):
        raise JalError(f'labeling project {path}: test image {TEST}/images/{member} has no mask '
                       f'{mask}; every test image needs its mask with the same stem')
      test.append(f'{TEST}/images/{member}')
      test_masks.append(mask)
  return Project(root=path, source=path, class_names=classes, train_paths=tuple(train),
                 train_labels=np.full(len(train), -1, np.int32), test_paths=tuple(test),
                 test_labels=np.full(len(test), -1, np.int32), test_masks=tuple(test_masks),
                 segmentation=True)


def _decode_masks(project: Project, image_size: int) -> np.ndarray:
  """The test masks, uint8 ``[M, s, s]``, resized by nearest neighbour (void 255)."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = np.zeros((len(project.test_masks), image_size, image_size), np.uint8)
  for i, member in enumerate(project.test_masks):
    full = os.path.join(project.root, member)
    try:
      with Image.open(full) as image:
        if image.mode not in ('L', 'P'):
          raise JalError(f'{full}: a mask is one channel of class indices (mode L or P), not '
                         f'{image.mode}')
        mask = np.asarray(image.resize((image_size, image_size), Image.NEAREST), np.uint8)
    except OSError as e:
      raise JalError(f'{full}: cannot read the mask ({e})') from None
    bad = mask[(mask != 255) & (mask >= len(project.class_names))]
    if bad.size:
      raise JalError(f'{full} holds class {int(bad[0])}, but there are '
                     f'{len(project.class_names)} classes (255 for void)')
    out[i] = mask
  return out


def identity_digest(project: Project) -> str:
  """SHA-256 of what a run's pool refers to: the class names in label order and
  the train paths in index order."""
  import hashlib  # pylint: disable=g-import-not-at-top
  text = '\n'.join(project.class_names) + '\0' + '\n'.join(project.train_paths)
  return hashlib.sha256(text.encode('utf-8')).hexdigest()


def decode(project: Project, paths: Sequence[str], image_size: int) -> np.ndarray:
  """Decodes and resizes images of the project.

  Args:
    project: the project (paths are relative to its root).
    paths: the images, relative to ``project.root``.
    image_size: the output height and width (bilinear resize).

  Returns:
    uint8 ``[n, image_size, image_size, 3]`` (every image as RGB).

  Raises:
    JalError: naming an image that cannot be read or decoded.
  """
  if not paths:
    return np.zeros((0, image_size, image_size, 3), np.uint8)
  images = local.decode_files(project.root, paths, mode='RGB', image_size=image_size)
  return np.stack(images).astype(np.uint8)


def to_dataset(project: Project, image_size: int | None, flip: bool = True) -> Dataset:
  """The project as a `Dataset`: its train images (labels -1 where unknown) and test split.

  Args:
    project: from `read_project`.
    image_size: ``config.dataset.image_size`` (required: a project's images
      have many sizes).
    flip: whether a horizontal flip keeps an image's class (photos: yes).

  Raises:
    JalError: no ``image_size``, or an image that cannot be decoded.
  """
  if not image_size:
    raise JalError('dataset project: set config.dataset.image_size (e.g. 64): the images are '
                   'resized to it')
  train = decode(project, project.train_paths, image_size)
  test = decode(project, project.test_paths, image_size)
  mean, std = channel_stats(train)
  train_labels, test_labels = project.train_labels, project.test_labels
  if project.segmentation:  # masks, every train pixel unknown (void) until a person answers
    train_labels = np.full((len(project.train_paths), image_size, image_size), 255, np.uint8)
    test_labels = _decode_masks(project, image_size)
  return Dataset(name='project', train_images=train, train_labels=train_labels,
                 test_images=test, test_labels=test_labels,
                 class_names=project.class_names, flip=flip, mean=mean, std=std)
