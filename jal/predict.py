r"""Command line: label new images with a run's last task model.

  python -m jal.predict --workdir DIR --images PATH --out predictions.csv

``DIR`` is a run whose task model is kept (a labeling project's run, or any
run that warm-starts); ``PATH`` is an image or a folder of images (any
depth). ``predictions.csv`` gets one row per image: its path (relative to
``PATH``), the predicted class, its probability, and the probability of
every class (``p_<class>``), from the newest checkpoint's task model. The
run is only read; ``--out`` must not exist yet (``--overwrite_out`` replaces it).

For a segmentation run ``--out`` is a folder: one ``<path>.png`` mask per
image (one channel, the predicted class index per pixel), at the image's
own size (nearest neighbour from the model's), the format
``--labels`` reads back: a person may correct them instead of painting
from scratch.
"""

from __future__ import annotations

import csv
import os

import ml_collections
import numpy as np
from absl import flags

from jal import cli
from jal.errors import JalError

IMAGES = flags.DEFINE_string('images', None, 'an image, or a folder of images (any depth)')
OUT = flags.DEFINE_string('out', None, 'the CSV to write (path, predicted, probability, p_<class>)')
OVERWRITE_OUT = flags.DEFINE_bool('overwrite_out', False, 'replace --out if it exists')


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The config stored in a run's ``jal_run.json``.

  Raises:
    JalError: ``workdir`` is not a jal run, or its marker is damaged.
  """
  from jal import workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  marker = os.path.join(workdir, workdir_lib.MARKER)
  if not os.path.isfile(marker):
    raise JalError(f'--workdir {workdir} is not a jal run (no {workdir_lib.MARKER})')
  try:
    with open(marker) as f:
      stored = json.load(f)['config']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise JalError(f'{marker} is damaged ({type(e).__name__}); restore it from a backup') from None
  return ml_collections.ConfigDict(stored)


def image_paths(path: str) -> tuple[str, list[str]]:
  """``(root, members)``: the images at ``path``, relative to ``root``, sorted.

  Raises:
    JalError: nothing there, or no image in the folder.
  """
  from jal.data import local  # pylint: disable=g-import-not-at-top
  if not os.path.exists(path):
    raise JalError(f'--images {path}: no such file or folder')
  if os.path.isfile(path):
    return os.path.dirname(os.path.abspath(path)), [os.path.basename(path)]
  members = local.image_files(path)
  if not members:
    raise JalError(f'--images {path}: no images in that folder')
  return path, members


def predict(workdir: str, images: str) -> tuple[list[str], tuple[str, ...], np.ndarray]:
  """The newest task model of the run in ``workdir`` on the images at ``images``.

  Returns:
    ``(paths, class_names, probabilities)``: the images (relative to
    ``images``' folder), the classes, and float32 ``[n, K]`` probabilities
    (segmentation: ``[n, H, W, K]``, at the model's image size).

  Raises:
    JalError: not a run, no task model kept, a damaged checkpoint, an
      image that cannot be decoded.
  """
  import jax  # pylint: disable=g-import-not-at-top
  from jal import checkpoint, experiment, sharding, workdir as workdir_lib  # pylint: disable=g-import-not-at-top
  from jal.data import local  # pylint: disable=g-import-not-at-top
  from jal.strategies.base import TaskModel  # pylint: disable=g-import-not-at-top
  config = load_run_config(workdir)
  root, members = image_paths(images)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, workdir_lib.CHECKPOINTS))
  try:
    state = ckpt.latest()
  finally:
    ckpt.close()
  if state is None or state.task_variables is None:
    raise JalError(f'--workdir {workdir} holds no trained task model yet (a labeling '
                   'project keeps one from its first round on; a simulated run only when it '
                   'warm-starts, config.retrain_from_scratch=False)')
  parts = experiment.build(config)
  decoded = local.decode_files(root, members, image_size=parts.dataset.image_shape[0],
                               mode='RGB' if parts.dataset.image_shape[-1] == 3 else 'L')
  batch = np.stack(decoded).astype(np.uint8)
  on_device = jax.device_put(batch, sharding.replicated(parts.mesh))
  task_model = TaskModel(parts.strategy.trainer, state.task_variables, config.eval_batch_size)
  log_p = parts.strategy.predictive_log_probabilities(task_model, on_device,
                                                       np.arange(batch.shape[0]))
  return members, parts.dataset.class_names, np.exp(np.asarray(log_p, np.float32))


def write_predictions(out: str, paths: list[str], class_names: tuple[str, ...],
                      probabilities: np.ndarray) -> None:
  """Writes the predictions CSV (atomically)."""
  with open(out + '.tmp', 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['path', 'predicted', 'probability'] + [f'p_{c}' for c in class_names])
    for path, p in zip(paths, probabilities):
      k = int(np.argmax(p))
      writer.writerow([path, class_names[k], f'{p[k]:.4f}'] + [f'{v:.4f}' for v in p])
  os.replace(out + '.tmp', out)


def write_masks(out: str, root: str, paths: list[str], probabilities: np.ndarray) -> None:
  """Writes each image's predicted mask as ``out/<path without extension>.png`` (uint8,
  class indices, mode L) at the image's own size; ``out`` is made whole, then renamed."""
  import shutil  # pylint: disable=g-import-not-at-top
  from PIL import Image  # pylint: disable=g-import-not-at-top
  tmp = out.rstrip('/') + '.tmp'
  shutil.rmtree(tmp, ignore_errors=True)
  for path, p in zip(paths, probabilities):
    source = root if os.path.isfile(root) else os.path.join(root, path)
    with Image.open(source) as image:
      size = image.size
    mask = Image.fromarray(np.argmax(p, axis=-1).astype(np.uint8), 'L').resize(size,
                                                                               Image.NEAREST)
    target = os.path.join(tmp, os.path.splitext(path)[0] + '.png')
    os.makedirs(os.path.dirname(target), exist_ok=True)
    mask.save(target)
  if os.path.isdir(out):
    shutil.rmtree(out)
  os.replace(tmp, out)


def main(argv):
  if len(argv) > 1:
    raise JalError(f"unexpected arguments {' '.join(argv[1:])}; every option is a flag")
  for flag in (cli.WORKDIR, IMAGES, OUT):
    if flag.value is None:
      raise JalError(f'--{flag.name} is required: python -m jal.predict --workdir DIR '
                     '--images PATH --out predictions.csv')
  if os.path.exists(OUT.value) and not OVERWRITE_OUT.value:
    raise JalError(f'--out {OUT.value} exists; choose another name or pass --overwrite_out')
  cli.set_up()
  paths, class_names, probabilities = predict(cli.WORKDIR.value, IMAGES.value)
  if probabilities.ndim == 4:  # segmentation: a mask per image
    if os.path.isfile(OUT.value):
      raise JalError(f'--out {OUT.value} is a file; a segmentation run writes a folder of masks')
    write_masks(OUT.value, IMAGES.value, paths, probabilities)
    print(f'jal: predicted the masks of {len(paths)} images into {OUT.value}/')
    return
  write_predictions(OUT.value, paths, class_names, probabilities)
  print(f'jal: predicted {len(paths)} images into {OUT.value}')


if __name__ == '__main__':
  cli.main(main)
