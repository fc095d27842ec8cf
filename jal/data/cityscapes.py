"""Cityscapes semantic segmentation (Cordts et al. 2016) through TensorFlow Datasets.

The tfds builder ``cityscapes/semantic_segmentation`` (tfds 4.9.10) gives, per
example, ``image_left`` (uint8 ``[1024, 2048, 3]``), ``segmentation_label``
(uint8 ``[1024, 2048, 1]``, the fine annotation's *labelIds*, i.e. the files
``*_gtFine_labelIds.png``) and ``image_id`` (e.g. ``'aachen_000000_000019'``).
Its splits are ``train`` (2975 images), ``validation`` (500) and ``test``
(1525). The test split's labels are not public (its masks are all void; results
on it go to the evaluation server), so, as in the papers that report
Cityscapes, jal's ``'test'`` split is tfds' ``validation`` split.

Masks are converted from labelIds to the 19 *trainIds* of the official
cityscapesScripts (`LABEL_ID_TO_TRAIN_ID`), every other label (void, the rare
classes such as caravan or guard rail, the license plate) becoming `IGNORE`
(255). Resizing is that of `jal.data.segmentation`: bilinear for images,
nearest neighbour for masks, one image at a time as it comes out of tfds, so a
split is never held at full resolution before it is resized.

Cityscapes needs a manual download: tfds prepares it from
``leftImg8bit_trainvaltest.zip`` and ``gtFine_trainvaltest.zip`` (from
https://www.cityscapes-dataset.com, after registering) in its manual folder,
``<data_dir>/downloads/manual`` unless ``manual_dir`` names another.

Without data, tfds 4.9.10 raises a bare ``AssertionError`` at every step
(measured offline, none of them touching the network): ``builder.as_dataset``
on an unprepared dataset, ``"Dataset cityscapes: could not find data in
<data_dir>. Please make sure to call dataset_builder.download_and_prepare()
..."``; ``download_and_prepare`` with an empty or missing manual folder,
``"Manual directory <dir> does not exist or is empty. Create it and
download/extract dataset artifacts in there using instructions: ..."`` (several
lines); with a manual folder lacking the zips, ``"You must download the dataset
files manually and place them in: <dir>/leftImg8bit_trainvaltest.zip,
<dir>/gtFine_trainvaltest.zip"``. Damaged zips fail in extraction
(``tensorflow_datasets.core.download.extractor.ExtractError``). `read_cityscapes`
checks for the two zips itself before asking tfds to prepare anything (so a
failed attempt leaves no folders behind) and turns each of these failures into
a one-line `JalError`.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image

from jal.data import local, tfds_source
from jal.data.segmentation import IGNORE, SegmentationSplit
from jal.errors import JalError

TFDS_NAME = 'cityscapes/semantic_segmentation'
# jal's split -> tfds' split: the test split has no public labels.
SPLITS = {'train': 'train', 'test': 'validation'}
MANUAL_FILES = ('leftImg8bit_trainvaltest.zip', 'gtFine_trainvaltest.zip')
HOMEPAGE = 'https://www.cityscapes-dataset.com'

# (name, labelId, trainId) of every label, as ``labels`` in cityscapesScripts'
# cityscapesscripts/helpers/labels.py (github.com/mcordts/cityscapesScripts,
# master, commit 0bcc4a7). trainId 255 and -1 are not trained on.
_LABELS = (
    ('unlabeled', 0, 255), ('ego vehicle', 1, 255), ('rectification border', 2, 255),
    ('out of roi', 3, 255), ('static', 4, 255), ('dynamic', 5, 255), ('ground', 6, 255),
    ('road', 7, 0), ('sidewalk', 8, 1), ('parking', 9, 255), ('rail track', 10, 255),
    ('building', 11, 2), ('wall', 12, 3), ('fence', 13, 4), ('guard rail', 14, 255),
    ('bridge', 15, 255), ('tunnel', 16, 255), ('pole', 17, 5), ('polegroup', 18, 255),
    ('traffic light', 19, 6), ('traffic sign', 20, 7), ('vegetation', 21, 8), ('terrain', 22, 9),
    ('sky', 23, 10), ('person', 24, 11), ('rider', 25, 12), ('car', 26, 13), ('truck', 27, 14),
    ('bus', 28, 15), ('caravan', 29, 255), ('trailer', 30, 255), ('train', 31, 16),
    ('motorcycle', 32, 17), ('bicycle', 33, 18), ('license plate', -1, -1),
)

CITYSCAPES_CLASSES = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                      'truck', 'bus', 'train', 'motorcycle', 'bicycle')


def _label_id_to_train_id() -> np.ndarray:
  table = np.full(256, IGNORE, np.uint8)
  for _, label_id, train_id in _LABELS:
    if label_id >= 0 and 0 <= train_id < len(CITYSCAPES_CLASSES):
      table[label_id] = train_id
  return table


# uint8 [256]: LABEL_ID_TO_TRAIN_ID[labelId] is the trainId (0..18) of the
# labelIds 7, 8, 11, 12, 13, 17, 19..28, 31, 32, 33 and IGNORE (255) for every
# other value: the other labelIds 0..33, the license plate (labelId -1, which
# reads as 255 in a uint8 mask) and values Cityscapes does not use. Source:
# cityscapesscripts/helpers/labels.py of github.com/mcordts/cityscapesScripts.
LABEL_ID_TO_TRAIN_ID = _label_id_to_train_id()
LABEL_ID_TO_TRAIN_ID.setflags(write=False)


def _resize(array: np.ndarray, size: tuple[int, int] | None, mask: bool) -> np.ndarray:
  """``array`` resized to ``size`` with PIL, as `jal.data.segmentation` resizes files.

  Args:
    array: uint8 ``[H, W, 3]`` (an image) or ``[H, W]`` (a mask).
    size: ``(height, width)``, or None to keep the size.
    mask: nearest neighbour (a mask) rather than bilinear (an image).

  Returns:
    uint8 ``[height, width, 3]`` or ``[height, width]``.
  """
  if size is None or array.shape[:2] == tuple(size):
    return np.asarray(array, np.uint8)
  im = Image.fromarray(np.ascontiguousarray(array, np.uint8))
  return np.asarray(im.resize((size[1], size[0]), Image.NEAREST if mask else Image.BILINEAR),
                    np.uint8)


def _check_args(size, max_train, max_test) -> None:
  if size is not None and (len(size) != 2 or any(int(s) != s or s < 1 for s in size)):
    raise JalError(f'the Cityscapes image size {tuple(size)} must be (height, width), two '
                   'positive integers, or None for 1024x2048')
  for key, value in (('max_train', max_train), ('max_test', max_test)):
    if value is not None and (int(value) != value or value < 0):
      raise JalError(f'Cityscapes {key}={value!r} must be a count of images (>= 0) or None')


def _manual_help() -> str:
  return (f"download {' and '.join(MANUAL_FILES)} from {HOMEPAGE} (registration needed) into a "
          'folder and set config.dataset.manual_dir to it (or use $TFDS_DATA_DIR/downloads/manual, '
          'by default ~/tensorflow_datasets/downloads/manual)')


def _prepare(tfds, builder, manual_dir: str | None) -> None:
  """Has tfds prepare Cityscapes from the manual download.

  Raises:
    JalError: a zip is missing from the manual folder, or tfds fails to
      prepare the data from them.
  """
  manual = (os.path.expanduser(manual_dir) if manual_dir
            else os.path.join(os.fspath(builder.data_dir_root), 'downloads', 'manual'))
  missing = [f for f in MANUAL_FILES if not os.path.isfile(os.path.join(manual, f))]
  if missing:
    raise JalError(f'Cityscapes is not prepared in {os.fspath(builder.data_dir_root)} and '
                   f"{manual} lacks {', '.join(missing)}: {_manual_help()}")
  config = tfds.download.DownloadConfig(manual_dir=manual, try_download_gcs=False)
  try:
    builder.download_and_prepare(download_config=config)
  except Exception as e:  # pylint: disable=broad-except
    # AssertionError for a manual folder tfds does not accept, ExtractError for
    # a damaged zip, whatever else tfds raises: one line in every case.
    raise JalError(f'tfds could not prepare Cityscapes from {manual} ({type(e).__name__}: '
                   f'{local.one_line(e, 160)}); replace the zips with good copies: '
                   f'{_manual_help()}') from None


def _read_split(tfds, dataset, size: tuple[int, int] | None) -> SegmentationSplit:
  """Reads one split image by image, resizing each as it comes."""
  count = int(dataset.cardinality())  # < 0: unknown (then the arrays grow as needed)
  images = masks = None
  stems = []
  for i, example in enumerate(tfds.as_numpy(dataset)):
    image = np.asarray(example['image_left'], np.uint8)
    label = np.asarray(example['segmentation_label'], np.uint8)
    if (image.ndim != 3 or image.shape[-1] != 3 or label.shape[:2] != image.shape[:2]
        or label.shape[2:] not in ((), (1,))):
      raise JalError(f'Cityscapes example {i} has image {image.shape} and mask {label.shape}; '
                     'expected [H, W, 3] and [H, W, 1]: prepare the tfds data again')
    image = _resize(image, size, mask=False)
    # Nearest neighbour only picks pixels, so resizing first and mapping labelIds
    # to trainIds second is the same as the other way round, on fewer pixels.
    mask = LABEL_ID_TO_TRAIN_ID[_resize(label.reshape(label.shape[:2]), size, mask=True)]
    if images is None:
      n = max(count, 1)
      images = np.empty((n,) + image.shape, np.uint8)
      masks = np.empty((n,) + mask.shape, np.uint8)
    elif image.shape != images.shape[1:]:
      raise JalError(f'Cityscapes images of several sizes ({images.shape[1:3]} and '
                     f'{image.shape[:2]}); set the image size to resize them all')
    if i == len(images):
      images = np.concatenate([images, np.empty_like(images)])
      masks = np.concatenate([masks, np.empty_like(masks)])
    images[i], masks[i] = image, mask
    image_id = example.get('image_id')
    stems.append(image_id.decode('utf-8') if isinstance(image_id, bytes)
                 else str(image_id) if image_id is not None else str(i))
  if images is None:
    h, w = size if size is not None else (1024, 2048)
    return SegmentationSplit(np.zeros((0, h, w, 3), np.uint8), np.zeros((0, h, w), np.uint8), ())
  n = len(stems)
  return SegmentationSplit(images[:n], masks[:n], tuple(stems))


def read_cityscapes(size: tuple[int, int] | None, data_dir: str | None = None,
                    manual_dir: str | None = None, max_train: int | None = None,
                    max_test: int | None = None) -> dict[str, SegmentationSplit]:
  """Cityscapes' fine annotations through tfds, as 19-class trainId masks.

  Reads prepared tfds data; if there are none, has tfds prepare them from the
  manual download (``leftImg8bit_trainvaltest.zip`` and
  ``gtFine_trainvaltest.zip``) first, which takes a while once.

  Args:
    size: ``(height, width)`` to resize to (images bilinear, masks nearest),
      or None to keep 1024x2048.
    data_dir: the tfds data folder; None for ``$TFDS_DATA_DIR``, else tfds'
      default ``~/tensorflow_datasets``.
    manual_dir: the folder holding the two zips; None for tfds' default,
      ``<data_dir>/downloads/manual``.
    max_train: read at most this many training images, the first ones in tfds'
      fixed order (tfds shuffles examples once, when it prepares them, so
      these are not one city's); None for all 2975.
    max_test: the same for the test split (tfds' validation split, 500).

  Returns:
    ``{'train': SegmentationSplit, 'test': SegmentationSplit}``: images uint8
    ``[N, H, W, 3]``, masks uint8 ``[N, H, W]`` holding trainIds 0..18
    (`CITYSCAPES_CLASSES`) and `IGNORE` (255), stems the tfds ``image_id``
    (``'<city>_<seq>_<frame>'``, or the index if the feature is absent). 'test'
    is Cityscapes' validation split: the labels of its test split are not
    public.

  Raises:
    JalError: the data are not prepared and the manual download is missing or
      cannot be prepared, tfds is missing or fails, or a bad argument; always
      one line.
  """
  _check_args(size, max_train, max_test)
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise JalError(f'reading Cityscapes needs tensorflow-datasets ({local.one_line(e)}); '
                   'pip install tensorflow-datasets') from None
  data_dir = data_dir or tfds_source.tfds_data_dir()
  limits = {'train': max_train, 'test': max_test}
  try:
    builder = tfds.builder(TFDS_NAME, data_dir=data_dir)
    try:
      builder.as_dataset(split=SPLITS['train'])
    except AssertionError:  # "Dataset cityscapes: could not find data in ..."
      _prepare(tfds, builder, manual_dir)
    out = {}
    for split, tfds_split in SPLITS.items():
      dataset = builder.as_dataset(split=tfds_split, shuffle_files=False)
      if limits[split] is not None:
        dataset = dataset.take(int(limits[split]))
      out[split] = _read_split(tfds, dataset, size)
    return out
  except JalError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise JalError(f'tfds could not read {TFDS_NAME} from {data_dir or "its default folder"} '
                   f'({type(e).__name__}: {local.one_line(e, 160)})') from None
