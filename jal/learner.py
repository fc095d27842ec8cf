"""The human-oracle round trip from Python, for notebooks.

  learner = Learner(config, 'runs/my_labels')   # config: configs/label_images.py
  rows = learner.query()        # trains what it can, returns the waiting query
  learner.teach({'unlabeled/a.jpg': 'cat', 'unlabeled/b.jpg': 'skip'})
  rows = learner.query()        # the next query, after the next round trained

It is the command line's loop (`jal.experiment.run` with a label file,
`jal.human`): the same work directory, resumable from either, and the same
checks. Answers given as a dict are written to a CSV first, which is the
file ``DIR/labels/`` keeps.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Mapping

import ml_collections
import numpy as np

from jal import checkpoint, experiment, workdir as workdir_lib
from jal.data import project as project_lib
from jal.errors import JalError
from jal.human import query as query_lib, session


class Learner:
  """Active learning with a person as the oracle, one query at a time.

  Args:
    config: a config whose ``oracle.name`` is ``'human'`` and whose dataset
      is a labeling project (configs/label_images.py).
    workdir: the run's work directory (new, or a run to resume).

  Raises:
    JalError: a config without the human oracle.
  """

  def __init__(self, config: ml_collections.ConfigDict, workdir: str):
    if config.oracle.name != 'human':
      raise JalError("Learner needs config.oracle.name='human' (configs/label_images.py)")
    self.config = config
    self.workdir = workdir
    self.records: list[dict] = []

  def query(self) -> list[dict]:
    """Trains every round whose answers are in, then returns the waiting query.

    Returns:
      One dict per image still waiting for an answer, most informative
      first: ``path`` (relative to the labeling project), ``rank`` (an
      int, 0 first), and ``score``, ``predicted``, ``probability`` as
      query.csv writes them (strings, empty when unknown). Empty when the
      run is finished.
    """
    self.records = experiment.run(self.config, self.workdir)
    return self._waiting()

  def teach(self, answers: Mapping[str, str] | str) -> list[dict]:
    """Imports answers to the waiting query and trains on them.

    Args:
      answers: ``{path: label}`` (a class name, or the skip label), paths as
        `query` gives them; for segmentation ``{path: mask}``, each mask
        uint8 ``[H, W]`` of class indices (255 void) at the image's size; or
        the path of a label file (the filled query.csv, a Label Studio or
        CVAT export, a folder; for segmentation a mask file or folder,
        `jal.human.mask_files`).

    Returns:
      The next waiting query, as `query`.

    Raises:
      JalError: a problem with the answers, naming it (nothing is changed).
    """
    if isinstance(answers, str):
      self.records = experiment.run(self.config, self.workdir, labels=answers)
      return self._waiting()
    if any(isinstance(v, np.ndarray) for v in answers.values()):
      return self._teach_masks(answers)
    with tempfile.TemporaryDirectory() as tmp:
      path = os.path.join(tmp, 'answers.csv')
      with open(path, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(('path', 'label'))
        writer.writerows(sorted(answers.items()))
      self.records = experiment.run(self.config, self.workdir, labels=path)
    return self._waiting()

  def _teach_masks(self, answers: Mapping[str, np.ndarray]) -> list[dict]:
    """Imports ``{path: mask}`` as a folder of ``<stem>.png`` masks."""
    from PIL import Image  # pylint: disable=g-import-not-at-top
    with tempfile.TemporaryDirectory() as tmp:
      folder = os.path.join(tmp, 'masks')
      os.makedirs(folder)
      for path, mask in answers.items():
        mask = np.asarray(mask)
        if mask.ndim != 2 or mask.dtype != np.uint8:
          raise JalError(f'the mask of {path} is {mask.dtype} {list(mask.shape)}; a mask is uint8 '
                         '[H, W] of class indices (255 void)')
        stem = os.path.splitext(os.path.basename(path))[0]
        Image.fromarray(mask, 'L').save(os.path.join(folder, f'{stem}.png'))
      self.records = experiment.run(self.config, self.workdir, labels=folder)
    return self._waiting()

  def _waiting(self) -> list[dict]:
    ckpt = checkpoint.Checkpointer(os.path.join(self.workdir, workdir_lib.CHECKPOINTS))
    try:
      state = ckpt.latest()
    finally:
      ckpt.close()
    if state is None or state.pending is None:
      return []
    cfg = self.config.dataset
    proj = project_lib.read_project(cfg.path, cfg.classes,
                                    masks=self.config.get('segmentation') is not None)
    pending = query_lib.Pending.from_json(state.pending)
    rows = query_lib.query_rows(pending, proj.train_paths, proj.class_names,
                                session.run_id(self.config))
    waiting = {proj.train_paths[i] for i in pending.remaining}
    return [{k: row[k] for k in ('path', 'rank', 'score', 'predicted', 'probability')}
            for row in rows if row['path'] in waiting]
