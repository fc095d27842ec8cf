"""A query waiting for a person's answers, and the files that ask for them.

`Pending` is the query as the checkpoint stores it. `write_query` renders it
into ``DIR/queries/round_<r>/``:

* ``query.csv``: one row per queried image, in rank order (the most
  informative first): ``path,rank,score,predicted,probability,round,run`` and
  an empty ``label`` column to fill in;
* ``tasks.json``: Label Studio's import format, one task per image, whose
  ``data`` holds the image's local-files URL and jal's own keys (``jal_path``,
  ``jal_round``, ``jal_rank``, ``jal_run``) and whose prediction carries the
  predicted class and the acquisition score as its ``score``, so that Label
  Studio's "order by prediction score" shows the most informative first;
* ``label_config.xml``: a Label Studio labeling interface with the classes
  (and the skip label) as single choices;
* ``index.html``: a contact sheet of the queried images (`contact_sheet`).

All four are rendered from the checkpoint and rewritten when missing; jal
never rewrites a ``query.csv`` that is already there, since a person may be
filling it in.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Sequence
from xml.sax import saxutils

from jal import workdir as workdir_lib
from jal.human import contact_sheet

QUERY_CSV = 'query.csv'
TASKS_JSON = 'tasks.json'
LABEL_CONFIG = 'label_config.xml'
CONTACT_SHEET = 'index.html'
QUERY_COLUMNS = ('path', 'rank', 'score', 'predicted', 'probability', 'round', 'run', 'label')
# The names of Label Studio's control and object tags in `label_config.xml`.
FROM_NAME, TO_NAME = 'label', 'image'


@dataclasses.dataclass(frozen=True)
class Pending:
  """A query to a person, and what of it is answered.

  Attributes:
    round: the round whose labeled pool the answers join (0: the initial
      pool; ``r + 1`` for round ``r``'s query).
    indices: the queried train indices, in rank order (most informative first).
    scores: the acquisition score of each (None where the strategy ranks
      without a score, e.g. CoreSet, or for the initial pool).
    predicted: the task model's predicted class of each (None before round 0).
    probability: the predicted class's probability (None before round 0).
    answered: the indices already answered (labeled or skipped), in order.
  """

  round: int
  indices: tuple[int, ...]
  scores: tuple[float | None, ...]
  predicted: tuple[int | None, ...]
  probability: tuple[float | None, ...]
  answered: tuple[int, ...] = ()

  @property
  def remaining(self) -> tuple[int, ...]:
    """The queried indices still waiting for an answer, in rank order."""
    done = set(self.answered)
    return tuple(i for i in self.indices if i not in done)

  def to_json(self) -> dict:
    return dataclasses.asdict(self) | {'version': 1}

  @classmethod
  def from_json(cls, d: dict) -> 'Pending':
    return cls(round=int(d['round']), indices=tuple(int(i) for i in d['indices']),
               scores=tuple(d['scores']), predicted=tuple(d['predicted']),
               probability=tuple(d['probability']),
               answered=tuple(int(i) for i in d.get('answered', ())))


def round_dir(workdir: str, round_: int) -> str:
  """``DIR/queries/round_<r>``: where the query whose answers join round ``r`` is written."""
  return os.path.join(workdir, workdir_lib.QUERIES, f'round_{round_}')


def local_files_url(path: str) -> str:
  """Label Studio's URL of a project image served as a local file.

  ``path`` is relative to the labeling project's folder, which Label Studio
  serves with ``LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true`` and
  ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to that folder.
  """
  from urllib import parse  # pylint: disable=g-import-not-at-top
  return '/data/local-files/?d=' + parse.quote(path)


def query_rows(pending: Pending, paths: Sequence[str], class_names: Sequence[str],
               run_id: str) -> list[dict]:
  """One dict per queried image, in rank order, with the `QUERY_COLUMNS`."""
  rows = []
  for rank, (index, score, predicted, probability) in enumerate(zip(
      pending.indices, pending.scores, pending.predicted, pending.probability)):
    rows.append({
        'path': paths[index], 'rank': rank,
        'score': '' if score is None else f'{score:.6g}',
        'predicted': '' if predicted is None else class_names[predicted],
        'probability': '' if probability is None else f'{probability:.4f}',
        'round': pending.round, 'run': run_id, 'label': ''})
  return rows


def label_config(class_names: Sequence[str], skip_label: str) -> str:
  """Label Studio's labeling interface: the image and one single choice per class."""
  choices = '\n'.join(f'    <Choice value={saxutils.quoteattr(c)}/>'
                      for c in (*class_names, skip_label))
  return (f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
          f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single" '
          f'showInLine="true">\n{choices}\n  </Choices>\n</View>\n')


def brush_label_config(class_names: Sequence[str]) -> str:
  """Label Studio's interface for a segmentation query: the image and a brush per class.

  A person paints each class's pixels; what is left unpainted is void. The
  export is read back by `jal.human.mask_files.read_label_studio_masks`.
  """
  labels = '\n'.join(f'    <Label value={saxutils.quoteattr(c)}/>' for c in class_names)
  return (f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n'
          f'  <BrushLabels name="{FROM_NAME}" toName="{TO_NAME}">\n{labels}\n'
          '  </BrushLabels>\n</View>\n')


def label_studio_tasks(rows: list[dict], pending: Pending) -> list[dict]:
  """Label Studio import tasks for `query_rows`, each with jal's prediction."""
  tasks = []
  for row, score in zip(rows, pending.scores):
    task = {'data': {'image': local_files_url(row['path']), 'jal_path': row['path'],
                     'jal_round': pending.round, 'jal_rank': row['rank'],
                     'jal_run': row['run']}}
    if row['predicted']:
      # Without an acquisition score the rank orders: the first gets 1.
      value = score if score is not None else 1.0 - row['rank'] / max(len(rows), 1)
      task['predictions'] = [{
          'model_version': f'jal round {pending.round - 1}', 'score': float(value),
          'result': [{'from_name': FROM_NAME, 'to_name': TO_NAME, 'type': 'choices',
                      'value': {'choices': [row['predicted']]}}]}]
    tasks.append(task)
  return tasks


def write_query(workdir: str, project_root: str, pending: Pending, paths: Sequence[str],
                class_names: Sequence[str], skip_label: str, run_id: str,
                masks: bool = False) -> str:
  """Writes the query files of ``pending`` (those missing) and returns their folder.

  Args:
    workdir: the run's directory.
    project_root: the labeling project's folder (the contact sheet reads
      the images there).
    pending: the query.
    paths: the train split's paths, relative to ``project_root``.
    class_names: the classes, in label order.
    skip_label: the answer that takes an image out of the pool.
    run_id: the run's identity (`jal.workdir.fingerprint` prefix), written
      into each row so that answers for another run are refused.
    masks: a segmentation query: Label Studio's interface is a brush per
      class (`brush_label_config`), and the answers are masks.

  Returns:
    ``DIR/queries/round_<r>``.
  """
  folder = round_dir(workdir, pending.round)
  os.makedirs(folder, exist_ok=True)
  rows = query_rows(pending, paths, class_names, run_id)

  def atomically(name, write):
    target = os.path.join(folder, name)
    if name == QUERY_CSV and os.path.exists(target):
      return  # a person may be filling it in
    with open(target + '.tmp', 'w', newline='', encoding='utf-8') as f:
      write(f)
    os.replace(target + '.tmp', target)

  def csv_file(f):
    writer = csv.DictWriter(f, QUERY_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)

  atomically(QUERY_CSV, csv_file)
  atomically(TASKS_JSON, lambda f: json.dump(label_studio_tasks(rows, pending), f, indent=1))
  config = brush_label_config(class_names) if masks else label_config(class_names, skip_label)
  atomically(LABEL_CONFIG, lambda f: f.write(config))
  atomically(CONTACT_SHEET, lambda f: f.write(contact_sheet.render(
      rows, project_root, title=f'jal: the query whose answers join round {pending.round}')))
  return folder


def write_labels_csv(workdir: str, pool, paths: Sequence[str],
                     class_names: Sequence[str]) -> str:
  """Writes ``DIR/labels.csv``: the labeled set so far as a manifest (``path,label``).

  In the order the images were labeled; paths relative to the labeling
  project's folder, so the file is a manifest of `jal.data.project` for a
  new run. Rendered from the checkpoint, atomically.
  """
  target = os.path.join(workdir, workdir_lib.LABELS_CSV)
  with open(target + '.tmp', 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(('path', 'label'))
    for index, label in zip(pool.labeled.tolist(), pool.oracle_labels.tolist()):
      writer.writerow((paths[index], class_names[label]))
  os.replace(target + '.tmp', target)
  return target
