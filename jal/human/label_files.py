"""Reading a person's answers from the files labeling tools write.

`read` takes one label file and returns its answers, each naming an image
and a label, without judging them (`jal.human.answers` checks them against
the query). It reads

* ``.csv``: the filled ``query.csv`` (or any CSV with ``path`` and ``label``
  columns); a row with an empty label is not answered yet;
* ``.json``: a Label Studio export, JSON (a list of tasks with their
  ``annotations``; an annotation cancelled with Label Studio's Skip button
  is a skip) or JSON-MIN (one flat object per annotation, the choice under
  the control's name, ``label``; Label Studio writes no row for a skipped
  or unannotated task, so those stay queued); a task without an annotation
  is not answered yet (Label Studio 1.23, tests/fixtures/label_studio);
* ``.zip``: a CVAT "ImageNet 1.0" export, ``<label>/<image path>`` members;
* a folder of ``<class>/<image>`` files or links, the same layout unzipped.

Images are named by their path in the labeling project (``jal_path`` in a
Label Studio task); in a CVAT export or a folder by ``<image path>`` below
the label (CVAT's frame name), matched by its path without the extension,
or by its file name when that is unique in the query. Every problem is one
`JalError` line naming the file and the place in it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import posixpath
import zipfile

from jal.data import local
from jal.errors import JalError

# Label Studio's name of the choice control in `jal.human.query.label_config`.
_CHOICES = 'label'
_CVAT_UNTAGGED = 'no_label'


@dataclasses.dataclass(frozen=True)
class Answer:
  """One answer as a file gives it.

  Attributes:
    image: the image's path as the file names it ('/'-separated).
    by_name: True when only the path below a label folder is known (CVAT, a
      folder), so it is matched without its extension or by file name.
    label: the class name or the skip label as written; None for an image
      skipped in the tool itself (a cancelled Label Studio annotation).
    where: the place in the file, for messages (``line 7``, ``task 12``).
    round: the round the file says the answer is for, if it says.
    run: the run the file says it belongs to, if it says.
  """

  image: str
  by_name: bool
  label: str | None
  where: str
  round: int | None = None
  run: str | None = None


@dataclasses.dataclass(frozen=True)
class LabelFile:
  """A label file's answers and what kind of file it is."""
  path: str
  kind: str  # 'csv', 'label-studio-json', 'label-studio-json-min', 'cvat-imagenet', 'folder'
  answers: tuple[Answer, ...]


def read(path: str, skip_label: str) -> LabelFile:
  """Reads the answers of one label file.

  Args:
    path: the file (``.csv``, ``.json``, ``.zip``) or folder.
    skip_label: the answer that means "skip": kept as written (checked later).

  Returns:
    The `LabelFile`.

  Raises:
    JalError: a missing or unreadable file, an unknown format, a damaged
      file (truncated JSON, a bad zip), wrong CSV columns, a zip member
      outside the archive's root, or a Label Studio task without jal's keys.
  """
  if not os.path.exists(path):
    raise JalError(f'--labels {path}: no such file or folder')
  if os.path.isdir(path):
    return LabelFile(path, 'folder', _read_folder(path))
  ext = os.path.splitext(path)[1].lower()
  readers = {'.csv': _read_csv, '.json': _read_json, '.zip': _read_cvat_zip}
  if ext not in readers:
    raise JalError(f'--labels {path}: unknown kind of label file; give the filled query.csv, a '
                   'Label Studio JSON or JSON-MIN export (.json), a CVAT ImageNet export (.zip) '
                   'or a folder of <class>/<image>')
  try:
    if os.path.getsize(path) == 0:
      raise JalError(f'--labels {path} is empty')
    return readers[ext](path)
  except (OSError, UnicodeDecodeError) as e:
    raise JalError(f'--labels {path}: cannot read it ({local.one_line(e)})') from None


def _read_csv(path: str) -> LabelFile:
  with open(path, newline='', encoding='utf-8-sig') as f:
    try:
      reader = csv.DictReader(f)
      columns = [c.strip() for c in reader.fieldnames or ()]
      if 'path' not in columns or 'label' not in columns:
        raise JalError(f'--labels {path}: a label CSV needs path and label columns (the '
                       f"query.csv jal wrote has them); this one has {', '.join(columns) or 'none'}")
      reader.fieldnames = columns
      answers = []
      for line, row in enumerate(reader, start=2):
        if None in row:
          raise JalError(f'--labels {path} line {line}: more fields than the header has')
        label = (row.get('label') or '').strip()
        if not label:
          continue  # not answered yet
        image = (row.get('path') or '').strip()
        if not image:
          raise JalError(f'--labels {path} line {line}: a label without a path')
        answers.append(Answer(image, False, label, f'line {line}',
                              _int_or_none(row.get('round'), path, f'line {line}'),
                              (row.get('run') or '').strip() or None))
    except csv.Error as e:
      raise JalError(f'--labels {path}: not a readable CSV ({local.one_line(e)})') from None
  return LabelFile(path, 'csv', tuple(answers))


def _int_or_none(value, path: str, where: str) -> int | None:
  if value is None or str(value).strip() == '':
    return None
  try:
    return int(str(value).strip())
  except ValueError:
    raise JalError(f'--labels {path} {where}: round {value!r} is not a number') from None


def _read_json(path: str) -> LabelFile:
  with open(path, encoding='utf-8') as f:
    try:
      tasks = json.load(f)
    except json.JSONDecodeError as e:
      raise JalError(f'--labels {path} is not valid JSON (line {e.lineno}: {e.msg}); export it '
                     'again from Label Studio') from None
  if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
    raise JalError(f'--labels {path}: a Label Studio export is a JSON list of tasks; this file '
                   'holds something else')
  if any('annotations' in t for t in tasks):
    return LabelFile(path, 'label-studio-json', tuple(_label_studio_json(path, tasks)))
  return LabelFile(path, 'label-studio-json-min', tuple(_label_studio_min(path, tasks)))


def _jal_keys(path: str, data: dict, where: str) -> tuple[str, int | None, str | None]:
  if not isinstance(data, dict) or not data.get('jal_path'):
    raise JalError(f'--labels {path} {where} has no jal_path: import the tasks.json jal wrote '
                   'into Label Studio, then export that project')
  return (str(data['jal_path']), _int_or_none(data.get('jal_round'), path, where),
          data.get('jal_run'))


def _label_studio_json(path: str, tasks: list[dict]) -> list[Answer]:
  answers = []
  for number, task in enumerate(tasks, start=1):
    where = f"task {task.get('id', number)}"
    image, round_, run = _jal_keys(path, task.get('data'), where)
    for annotation in task.get('annotations') or ():
      if annotation.get('was_cancelled'):
        answers.append(Answer(image, False, None, where, round_, run))
        continue
      choices = [c for r in annotation.get('result') or ()
                 if r.get('from_name') == _CHOICES and r.get('type') == 'choices'
                 for c in (r.get('value') or {}).get('choices') or ()]
      if len(choices) > 1:
        raise JalError(f'--labels {path} {where}: an annotation chooses {len(choices)} classes '
                       f'({", ".join(choices)}); choose one')
      if choices:
        answers.append(Answer(image, False, str(choices[0]), where, round_, run))
  return answers


def _label_studio_min(path: str, tasks: list[dict]) -> list[Answer]:
  answers = []
  for number, task in enumerate(tasks, start=1):
    where = f"task {task.get('id', number)}"
    image, round_, run = _jal_keys(path, task, where)
    value = task.get(_CHOICES)
    if value is None or value == '':
      continue  # not annotated
    if isinstance(value, dict):  # several choices: {"choices": [...]}
      value = value.get('choices')
    if isinstance(value, list):
      if len(value) != 1:
        raise JalError(f'--labels {path} {where}: {len(value)} classes chosen; choose one')
      value = value[0]
    answers.append(Answer(image, False, str(value), where, round_, run))
  return answers


def _split_member(path: str, member: str) -> tuple[str, str]:
  """``(label, image path)`` of a ``<label>/<image path>`` member, refusing escapes."""
  parts = member.split('/')
  normalized = posixpath.normpath(member)
  if (member.startswith('/') or '\\' in member or '..' in parts or normalized != member
      or len(parts) < 2 or ':' in parts[0]):
    raise JalError(f'--labels {path}: member {member!r} is not <label>/<image> inside the '
                   'archive; refusing it (a path that leaves the folder is never followed)')
  return parts[0], '/'.join(parts[1:])


def _read_cvat_zip(path: str) -> LabelFile:
  try:
    with zipfile.ZipFile(path) as archive:
      members = [i.filename for i in archive.infolist() if not i.is_dir()]
  except (zipfile.BadZipFile, EOFError) as e:
    raise JalError(f'--labels {path} is not a readable zip ({local.one_line(e)}); export it '
                   'again from CVAT') from None
  answers = []
  for member in sorted(members):
    if member.split('/')[-1].startswith('.') or member.startswith('__MACOSX/'):
      continue
    label, image = _split_member(path, member)
    if label == _CVAT_UNTAGGED:
      continue  # CVAT's folder of images without a tag: not answered
    answers.append(Answer(image, True, label, f'member {member}'))
  if not answers and not members:
    raise JalError(f'--labels {path} is an empty archive')
  return LabelFile(path, 'cvat-imagenet', tuple(answers))


def _read_folder(path: str) -> tuple[Answer, ...]:
  answers = []
  for root, dirs, files in os.walk(path, followlinks=False):
    dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
    for name in sorted(files):
      if name.startswith('.'):
        continue
      member = os.path.relpath(os.path.join(root, name), path).replace(os.sep, '/')
      label, image = _split_member(path, member)
      answers.append(Answer(image, True, label, member))
  if not answers:
    raise JalError(f'--labels {path}: the folder holds no <class>/<image> files')
  return tuple(answers)
