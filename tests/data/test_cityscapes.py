"""Cityscapes through tfds (jal.data.cityscapes): labelIds become the official trainIds, images
and masks are resized (masks by nearest neighbour), the validation split serves as the test split,
all from small fake examples under tfds.testing.mock_data; without the manual download the error
is one line that says how to provide it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from jal.data import cityscapes
from jal.data.segmentation import IGNORE
from jal.errors import JalError

# labelId -> trainId of the 19 trained classes, copied from cityscapesscripts/helpers/labels.py
# (github.com/mcordts/cityscapesScripts); every other labelId is not trained on.
OFFICIAL_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10,
                      24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
H, W = 16, 32
COUNTS = {'train': 3, 'validation': 2, 'test': 4}


def _reference() -> np.ndarray:
  table = np.full(256, 255, np.uint8)
  table[list(OFFICIAL_TRAIN_IDS)] = list(OFFICIAL_TRAIN_IDS.values())
  return table


def _fake(split: str, i: int) -> tuple[np.ndarray, np.ndarray]:
  """A fake example of ``split``: a random image and a mask of labelId blocks (-1..33 and 255)."""
  rng = np.random.default_rng([len(split), i])
  image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
  ids = np.array(list(range(34)) + [255], np.uint8)  # 255: the license plate's -1
  blocks = rng.choice(ids, size=(H // 4, W // 4))
  label = np.kron(blocks, np.ones((4, 4), np.uint8)).astype(np.uint8)[..., None]
  return image, label


def _mock(with_id: bool = True):
  """``tfds.testing.mock_data`` yielding `COUNTS[split]` examples of `_fake` per split."""
  tfds = pytest.importorskip('tensorflow_datasets')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  seen = []

  def as_dataset(self, split, *args, **kwargs):
    del self, args, kwargs
    name = str(split)
    name = next(s for s in COUNTS if name == s or name.startswith(s + '['))
    seen.append(name)

    def examples():
      for i in range(COUNTS[name]):
        image, label = _fake(name, i)
        example = {'image_left': image, 'segmentation_label': label}
        if with_id:
          example['image_id'] = f'{name}_{i:06d}'
        yield example

    signature = {'image_left': tf.TensorSpec((H, W, 3), tf.uint8),
                 'segmentation_label': tf.TensorSpec((H, W, 1), tf.uint8)}
    if with_id:
      signature['image_id'] = tf.TensorSpec((), tf.string)
    return tf.data.Dataset.from_generator(examples, output_signature=signature)

  return tfds.testing.mock_data(as_dataset_fn=as_dataset), seen


def test_label_table_is_the_official_one():
  np.testing.assert_array_equal(cityscapes.LABEL_ID_TO_TRAIN_ID, _reference())
  table = cityscapes.LABEL_ID_TO_TRAIN_ID
  assert table.dtype == np.uint8 and table.shape == (256,)
  assert (table[7], table[26], table[33], table[0], table[29], table[255]) == (0, 13, 18, 255,
                                                                                255, IGNORE)
  assert len(cityscapes.CITYSCAPES_CLASSES) == 19
  names = {n: t for n, i, t in cityscapes._LABELS if 0 <= t < 19}
  assert tuple(sorted(names, key=names.get)) == cityscapes.CITYSCAPES_CLASSES
  assert cityscapes.CITYSCAPES_CLASSES[13] == 'car' and cityscapes.CITYSCAPES_CLASSES[0] == 'road'


@pytest.mark.parametrize('with_id', [True, False])
def test_full_size_masks_are_train_ids_and_validation_is_test(tmp_path, with_id):
  mock, seen = _mock(with_id)
  with mock:
    splits = cityscapes.read_cityscapes(None, data_dir=str(tmp_path / 'tfds'))
  assert sorted(splits) == ['test', 'train'] and 'test' not in seen and 'validation' in seen
  reference = _reference()
  for split, source in (('train', 'train'), ('test', 'validation')):
    got = splits[split]
    n = COUNTS[source]
    assert got.images.shape == (n, H, W, 3) and got.masks.shape == (n, H, W)
    assert got.images.dtype == np.uint8 and got.masks.dtype == np.uint8
    if with_id:
      assert got.stems == tuple(f'{source}_{i:06d}' for i in range(n))
    else:
      assert got.stems == tuple(str(i) for i in range(n))
    for i in range(n):
      image, label = _fake(source, i)
      np.testing.assert_array_equal(got.images[i], image)
      np.testing.assert_array_equal(got.masks[i], reference[label[..., 0]])
  values = set(np.unique(splits['train'].masks).tolist())
  assert values <= set(range(19)) | {IGNORE} and IGNORE in values and len(values) > 10


def test_resized_masks_are_nearest_neighbour_and_limits_apply(tmp_path):
  mock, _ = _mock()
  with mock:
    splits = cityscapes.read_cityscapes((8, 12), data_dir=str(tmp_path / 'tfds'), max_train=2,
                                        max_test=1)
  train, test = splits['train'], splits['test']
  assert train.images.shape == (2, 8, 12, 3) and train.masks.shape == (2, 8, 12)
  assert test.images.shape == (1, 8, 12, 3) and test.masks.shape == (1, 8, 12)
  assert train.images.dtype == np.uint8 and train.masks.dtype == np.uint8
  assert train.stems == ('train_000000', 'train_000001') and test.stems == ('validation_000000',)
  reference = _reference()
  for i in range(2):
    image, label = _fake('train', i)
    source = set(np.unique(reference[label]).tolist())
    assert set(np.unique(train.masks[i]).tolist()) <= source  # never an interpolated class
    bilinear = np.asarray(Image.fromarray(image).resize((12, 8), Image.BILINEAR))
    np.testing.assert_array_equal(train.images[i], bilinear)
    nearest = np.asarray(Image.fromarray(label[..., 0]).resize((12, 8), Image.NEAREST))
    np.testing.assert_array_equal(train.masks[i], reference[nearest])


def _one_line_about_the_download(message: str) -> None:
  assert '\n' not in message and 'Traceback' not in message
  for part in ('leftImg8bit_trainvaltest.zip', 'gtFine_trainvaltest.zip',
               'www.cityscapes-dataset.com', 'config.dataset.manual_dir'):
    assert part in message


def test_without_data_the_error_is_one_line_naming_the_manual_download(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  data_dir = tmp_path / 'tfds'
  with pytest.raises(JalError) as e:
    cityscapes.read_cityscapes((8, 16), data_dir=str(data_dir), manual_dir=str(tmp_path / 'man'))
  _one_line_about_the_download(str(e.value))
  assert str(tmp_path / 'man') in str(e.value)
  assert not data_dir.exists()  # nothing was prepared, nothing left behind
  # No manual folder given: tfds' default under the data folder is named.
  with pytest.raises(JalError) as e:
    cityscapes.read_cityscapes(None, data_dir=str(data_dir))
  _one_line_about_the_download(str(e.value))
  assert str(data_dir / 'downloads' / 'manual') in str(e.value)


def test_damaged_zips_are_one_line(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  manual = tmp_path / 'man'
  manual.mkdir()
  for name in cityscapes.MANUAL_FILES:
    (manual / name).write_bytes(b'not a zip')
  with pytest.raises(JalError, match='could not prepare Cityscapes') as e:
    cityscapes.read_cityscapes(None, data_dir=str(tmp_path / 'tfds'), manual_dir=str(manual))
  _one_line_about_the_download(str(e.value))


@pytest.mark.parametrize('kwargs,message', [
    (dict(size=(0, 8)), 'must be \\(height, width\\)'),
    (dict(size=(8, 8), max_train=-1), 'max_train=-1'),
])
def test_bad_arguments_are_one_line(kwargs, message):
  with pytest.raises(JalError, match=message):
    cityscapes.read_cityscapes(**kwargs)


def _png(array: np.ndarray) -> bytes:
  import io  # pylint: disable=g-import-not-at-top
  out = io.BytesIO()
  Image.fromarray(array).save(out, 'PNG')
  return out.getvalue()


def test_tfds_prepares_the_manual_download_once(tmp_path):
  """Real tfds, no mock: two tiny zips in Cityscapes' layout are prepared, then read as is."""
  pytest.importorskip('tensorflow_datasets')
  import zipfile  # pylint: disable=g-import-not-at-top
  manual = tmp_path / 'man'
  manual.mkdir()
  image = np.zeros((1024, 2048, 3), np.uint8)
  image[:, :1024] = 200
  label = np.full((1024, 2048), 7, np.uint8)  # road
  label[:, 1024:] = 26  # car
  label[:256] = 0  # unlabeled
  with zipfile.ZipFile(manual / 'leftImg8bit_trainvaltest.zip', 'w') as images, \
       zipfile.ZipFile(manual / 'gtFine_trainvaltest.zip', 'w') as labels:
    for split in ('train', 'val', 'test'):
      stem = f'{split}city_000000_000019'
      images.writestr(f'leftImg8bit/{split}/{split}city/{stem}_leftImg8bit.png', _png(image))
      labels.writestr(f'gtFine/{split}/{split}city/{stem}_gtFine_labelIds.png', _png(label))
  data_dir = str(tmp_path / 'tfds')
  splits = cityscapes.read_cityscapes((8, 16), data_dir=data_dir, manual_dir=str(manual))
  assert splits['train'].stems == ('traincity_000000_000019',)
  assert splits['test'].stems == ('valcity_000000_000019',)
  expected = np.full((8, 16), 0, np.uint8)
  expected[:, 8:] = 13
  expected[:2] = IGNORE
  for split in splits.values():
    np.testing.assert_array_equal(split.masks[0], expected)
    assert split.images.shape == (1, 8, 16, 3) and split.images[0, 0, 0, 0] == 200
  # Prepared: read again without the manual download.
  again = cityscapes.read_cityscapes((8, 16), data_dir=data_dir, manual_dir=str(tmp_path / 'no'))
  np.testing.assert_array_equal(again['train'].masks, splits['train'].masks)
