"""Segmentation data (jal.data.segmentation): CamVid from the shared copy, and an image-and-mask
folder, with nearest-neighbour masks and one line for each bad layout."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from jal.data import segmentation
from jal.errors import JalError

CAMVID = os.path.join(os.environ.get('JAL_DATA_DIR', ''), 'camvid.zip')


@pytest.mark.skipif(not os.path.isfile(CAMVID), reason='needs JAL_DATA_DIR with camvid.zip')
def test_camvid_test_split_from_the_shared_copy():
  splits = segmentation.read_camvid(CAMVID, size=(45, 60), splits=('val',))
  val = splits['val']
  assert val.images.shape == (101, 45, 60, 3) and val.masks.shape == (101, 45, 60)
  assert val.images.dtype == np.uint8 and val.masks.dtype == np.uint8
  values = set(np.unique(val.masks).tolist())
  assert values <= set(range(11)) | {255} and 255 in values and 3 in values  # void, Road
  assert len(set(val.stems)) == 101


def _pair(root, stem, mask, size=None):
  os.makedirs(root / 'images', exist_ok=True)
  os.makedirs(root / 'masks', exist_ok=True)
  h, w = mask.shape
  Image.fromarray(np.full((h, w, 3), 100, np.uint8)).save(root / 'images' / f'{stem}.jpg')
  Image.fromarray(mask.astype(np.uint8), 'L').save(root / 'masks' / f'{stem}.png')


def test_a_mask_folder_resizes_masks_by_nearest_neighbour(tmp_path):
  mask = np.zeros((8, 8), np.uint8)
  mask[:, 4:] = 2
  mask[0, 0] = 9  # void in this dataset
  _pair(tmp_path, 'a', mask)
  _pair(tmp_path, 'b', np.ones((8, 8), np.uint8))
  split = segmentation.read_mask_folder(str(tmp_path), num_classes=3, size=(4, 4), void=9)
  assert split.stems == ('a', 'b') and split.images.shape == (2, 4, 4, 3)
  assert set(np.unique(split.masks[0]).tolist()) <= {0, 2, 255}  # never an interpolated class
  np.testing.assert_array_equal(split.masks[0][:, 2:], 2)


@pytest.mark.parametrize('case,message', [
    ('no mask', 'has no mask masks/b.png'),
    ('class out of range', 'holds class 7, but there are 3 classes'),
    ('missing', 'does not exist'),
    ('sizes differ', 'masks of several sizes'),
])
def test_bad_mask_folders_are_one_line(tmp_path, case, message):
  _pair(tmp_path, 'a', np.zeros((4, 4), np.uint8))
  if case == 'no mask':
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'images' / 'b.jpg')
  elif case == 'class out of range':
    _pair(tmp_path, 'b', np.full((4, 4), 7, np.uint8))
  elif case == 'sizes differ':
    _pair(tmp_path, 'b', np.zeros((5, 4), np.uint8))
  path = str(tmp_path / 'nope') if case == 'missing' else str(tmp_path)
  with pytest.raises(JalError, match=message):
    segmentation.read_mask_folder(path, num_classes=3)
