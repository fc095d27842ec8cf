"""Importing a person's answers: check the whole file, store it, then apply it.

`resolve` checks every answer of a label file (`jal.human.label_files`)
against the query waiting for answers before anything is written: the image
is in the project and in this round's query (or repeats an answer already
given), the label is a class or the skip label, no image is answered twice
with different labels, and the file is for this run and this round. One
problem is one `JalError` line naming the file, the place and the way out;
then nothing on disk has changed.

`import_labels` then stores the file itself in ``DIR/labels/`` (a person's
answers are the most expensive data a run holds, so they are kept as given,
first), and writes a checkpoint whose pool holds the answers: labeled images
join the labeled pool, skipped ones leave the pool, and images not answered
yet stay queued. A kill between the two leaves the old checkpoint and a copy
that the next import of the same file reuses; importing a file twice changes
nothing and says so.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import hashlib
import os
import posixpath
import shutil

import numpy as np

from jal import checkpoint, workdir as workdir_lib
from jal.errors import JalError
from jal.human import label_files
from jal.human.query import Pending


@dataclasses.dataclass(frozen=True)
class Decision:
  """What a label file changes.

  Attributes:
    labeled: ``(train index, class)`` of each new label, in the file's order.
    skipped: train indices newly taken out of the pool.
    repeated: answers that repeat one already given (changing nothing).
  """
  labeled: tuple[tuple[int, int], ...]
  skipped: tuple[int, ...]
  repeated: int


def file_digest(path: str) -> str:
  """SHA-256 of a label file, or of a folder's ``<class>/<image>`` names and contents."""
  digest = hashlib.sha256()
  if os.path.isdir(path):
    for root, dirs, files in os.walk(path):
      dirs.sort()
      for name in sorted(files):
        full = os.path.join(root, name)
        digest.update(os.path.relpath(full, path).encode() + b'\0')
        with open(full, 'rb') as f:
          digest.update(hashlib.sha256(f.read()).digest())
    return digest.hexdigest()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _image_index(answer: label_files.Answer, by_path: dict[str, int],
                 queried: dict[str, list[int]], source: str) -> int:
  """The train index an answer names, or a `JalError` naming the unknown image."""
  if answer.image in by_path:
    return by_path[answer.image]
  if answer.by_name:
    # CVAT keeps the frame's path and its own extension; a flat upload only the name.
    stem = posixpath.splitext(answer.image)[0]
    for key in (stem, posixpath.basename(answer.image), posixpath.basename(stem)):
      found = queried.get(key, [])
      if len(found) == 1:
        return found[0]
      if len(found) > 1:
        raise JalError(f'--labels {source} {answer.where}: {answer.image} matches {len(found)} '
                       'queried images by name; export with the images\' paths')
  raise JalError(f'--labels {source} {answer.where}: {answer.image} is not an image of this '
                 'labeling project; was the file exported for another project?')


def resolve(labels: label_files.LabelFile, pending: Pending, pool, paths: tuple[str, ...],
            class_names: tuple[str, ...], skip_label: str, run_id: str) -> Decision:
  """Checks a label file against the waiting query and returns what it changes.

  Args:
    labels: the file's answers.
    pending: the query waiting for answers.
    pool: the `jal.pool.Pool` before the import.
    paths: the train split's paths (index order).
    class_names: the classes, in label order.
    skip_label: the answer that takes an image out of the pool.
    run_id: this run's identity (written into query.csv and tasks.json).

  Returns:
    The `Decision`.

  Raises:
    JalError: the first problem, naming the file and the place in it.
  """
  source = labels.path
  by_path = {p: i for i, p in enumerate(paths)}
  queried: dict[str, list[int]] = {}
  for i in pending.indices:
    stem = posixpath.splitext(paths[i])[0]
    for key in {stem, posixpath.basename(paths[i]), posixpath.basename(stem)}:
      queried.setdefault(key, []).append(i)
  classes = {c: k for k, c in enumerate(class_names)}
  known = dict(zip(pool.labeled.tolist(), pool.oracle_labels.tolist()))
  excluded = set(pool.excluded.tolist())
  waiting = set(pending.remaining)
  chosen: dict[int, tuple[int, str]] = {}  # index -> (class or -1 for skip, where)
  repeated = 0
  for answer in labels.answers:
    where = f'--labels {source} {answer.where}'
    if answer.run is not None and answer.run != run_id:
      raise JalError(f'{where} belongs to run {answer.run}, not to this run ({run_id}): import '
                     'it into the work directory whose query it answers')
    if answer.round is not None and answer.round != pending.round:
      raise JalError(f'{where} answers the query of round {answer.round}, but the query '
                     f'waiting is round {pending.round}\'s (queries/round_{pending.round}/)')
    if answer.label is None or answer.label == skip_label:
      value = -1
    elif answer.label in classes:
      value = classes[answer.label]
    else:
      near = difflib.get_close_matches(answer.label, list(classes) + [skip_label], n=1)
      hint = f'did you mean {near[0]!r}? ' if near else ''
      raise JalError(f'{where}: unknown class {answer.label!r}; {hint}the classes are '
                     f"{', '.join(class_names)} (and {skip_label!r} to skip an image)")
    index = _image_index(answer, by_path, queried, source)
    if index in chosen and chosen[index][0] != value:
      raise JalError(f'{where} answers {paths[index]} again with another label (first at '
                     f'{chosen[index][1]}); keep one answer per image')
    if index in waiting:
      chosen[index] = (value, answer.where)
      continue
    earlier = known.get(index, -1 if index in excluded else None)
    if earlier is None:
      raise JalError(f'{where}: {paths[index]} is not in round {pending.round}\'s query '
                     f'(queries/round_{pending.round}/query.csv lists the images to label)')
    if earlier != value:
      said = class_names[earlier] if earlier >= 0 else skip_label
      raise JalError(f'{where}: {paths[index]} was already answered {said!r}; jal keeps the '
                     'first answer (fix it in the file, or start a new run to relabel)')
    repeated += 1
  labeled = tuple((i, v) for i, (v, _) in chosen.items() if v >= 0)
  skipped = tuple(i for i, (v, _) in chosen.items() if v < 0)
  return Decision(labeled, skipped, repeated)


def store(workdir: str, labels: label_files.LabelFile, digest: str, round_: int) -> str:
  """Copies a label file into ``DIR/labels/`` (atomically, synced) before it is applied.

  A folder is stored as a CSV of its ``label,image`` entries. Returns the
  copy's path relative to ``workdir``; an existing copy of the same digest is
  reused.
  """
  source = labels.path
  folder = os.path.join(workdir, workdir_lib.LABELS)
  os.makedirs(folder, exist_ok=True)
  name = os.path.basename(os.path.normpath(source))
  if os.path.isdir(source):
    name += '.csv'
  relative = os.path.join(workdir_lib.LABELS, f'round_{round_}-{digest[:12]}-{name}')
  target = os.path.join(workdir, relative)
  if os.path.exists(target):
    return relative
  tmp = target + '.tmp'
  with open(tmp, 'wb') as out:
    if os.path.isdir(source):
      out.write(b'label,image\n')
      for answer in labels.answers:
        out.write(f'{answer.label},{answer.image}\n'.encode())
    else:
      with open(source, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
          out.write(block)
    out.flush()
    os.fsync(out.fileno())
  os.replace(tmp, target)
  _sync_directory(folder)
  return relative


def _sync_directory(folder: str) -> None:
  try:
    fd = os.open(folder, os.O_RDONLY)
  except OSError:
    return
  try:
    os.fsync(fd)
  except OSError:
    pass
  finally:
    os.close(fd)


def apply(state: checkpoint.RunState, pending: Pending, decision: Decision,
          entry: dict) -> checkpoint.RunState:
  """The state with ``decision`` applied and ``entry`` appended to its imports."""
  pool = state.pool
  if decision.labeled:
    indices, classes = zip(*decision.labeled)
    pool = pool.add(np.array(indices, np.int64), np.array(classes, np.int32))
  if decision.skipped:
    pool = pool.exclude(np.array(decision.skipped, np.int64))
  answered = pending.answered + tuple(i for i, _ in decision.labeled) + decision.skipped
  still = dataclasses.replace(pending, answered=answered)
  return dataclasses.replace(state, pool=pool,
                             pending=still.to_json() if still.remaining else None,
                             imports=state.imports + [entry])


def _waiting_query(workdir: str, state: checkpoint.RunState, source: str
                   ) -> tuple[Pending, str, dict | None]:
  """The query waiting for answers, the SHA-256 of ``source``, and the import entry of an
  earlier import of the same file (None if it is new).

  Raises:
    JalError: no query waiting, or ``source`` missing or unreadable.
  """
  if state.pending is None:
    raise JalError(f'--labels {source}: no query is waiting for answers in {workdir}; run '
                   'without --labels to go on')
  pending = Pending.from_json(state.pending)
  if not os.path.exists(source):
    raise JalError(f'--labels {source}: no such file or folder')
  try:
    digest = file_digest(source)
  except OSError as e:
    raise JalError(f'--labels {source}: cannot read it ({e.strerror or e})') from None
  earlier = next((e for e in state.imports if e['sha256'] == digest), None)
  return pending, digest, earlier


def _still_queued(left: int, pending: Pending) -> str:
  """The report's tail for a partial answer ('' when nothing is left)."""
  if not left:
    return ''
  return (f'; {left} of the {len(pending.indices)} images of round {pending.round}\'s '
          'query are still unanswered and stay queued')


def import_labels(workdir: str, state: checkpoint.RunState, source: str,
                  ckpt: checkpoint.Checkpointer, paths: tuple[str, ...],
                  class_names: tuple[str, ...], skip_label: str,
                  run_id: str) -> tuple[checkpoint.RunState, str]:
  """Imports the label file ``source`` into the run: checks, stores, checkpoints.

  Returns:
    The new state (already checkpointed; the old one if nothing changed) and
    a one-line report of what changed.

  Raises:
    JalError: no query waiting, or a problem with the file (nothing written).
  """
  pending, digest, earlier = _waiting_query(workdir, state, source)
  if earlier is not None:
    return state, f'{source} was already imported (as {earlier["file"]}); nothing changed'
  labels = label_files.read(source, skip_label)
  decision = resolve(labels, pending, state.pool, paths, class_names, skip_label, run_id)
  waiting = len(pending.remaining)
  if not decision.labeled and not decision.skipped:
    raise JalError(f'--labels {source} answers none of the {waiting} images waiting in round '
                   f'{pending.round}\'s query; fill in their labels (queries/'
                   f'round_{pending.round}/query.csv) and import again')
  copy = store(workdir, labels, digest, pending.round)
  entry = {'file': copy, 'source': os.path.abspath(source), 'sha256': digest,
           'kind': labels.kind, 'round': pending.round, 'labeled': len(decision.labeled),
           'skipped': len(decision.skipped), 'repeated': decision.repeated,
           'imported': datetime.datetime.now(datetime.timezone.utc).isoformat(
               timespec='seconds')}
  new = apply(state, pending, decision, entry)
  ckpt.save(new)
  left = waiting - len(decision.labeled) - len(decision.skipped)
  report = (f'imported {source} ({labels.kind}): {len(decision.labeled)} labeled, '
            f'{len(decision.skipped)} skipped' +
            (f', {decision.repeated} repeated' if decision.repeated else '') +
            f'; kept as {os.path.join(workdir, copy)}')
  return new, report + _still_queued(left, pending)


def _store_masks(workdir: str, source: str, digest: str, round_: int) -> str:
  """Copies a mask answer (a file, or a folder of PNGs as it is) into ``DIR/labels/``
  before it is applied, atomically and synced; returns the copy's path relative to
  ``workdir`` (an existing copy of the same digest is reused)."""
  folder = os.path.join(workdir, workdir_lib.LABELS)
  os.makedirs(folder, exist_ok=True)
  name = os.path.basename(os.path.normpath(source))
  relative = os.path.join(workdir_lib.LABELS, f'round_{round_}-{digest[:12]}-{name}')
  target = os.path.join(workdir, relative)
  if os.path.exists(target):
    return relative
  tmp = target + '.tmp'
  if os.path.isdir(source):
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    for root, _, files in os.walk(tmp):
      for f in files:
        with open(os.path.join(root, f), 'rb+') as handle:
          os.fsync(handle.fileno())
  else:
    shutil.copyfile(source, tmp)
    with open(tmp, 'rb+') as handle:
      os.fsync(handle.fileno())
  os.replace(tmp, target)
  _sync_directory(folder)
  return relative


def resolve_masks(masks: dict[str, np.ndarray], pending: Pending, pool, paths: tuple[str, ...],
                  source: str) -> tuple[tuple[tuple[int, np.ndarray], ...], int]:
  """The new ``(train index, mask)`` answers of a mask file, in the query's rank order,
  and how many repeat an image already labeled.

  Masks are named by the image's file stem (`jal.human.mask_files`).

  Raises:
    JalError: a stem that is no image of the project, or not in the waiting
      query, or that two queried images share.
  """
  stem = lambda p: posixpath.splitext(posixpath.basename(p))[0]
  by_stem: dict[str, list[int]] = {}
  for i, p in enumerate(paths):
    by_stem.setdefault(stem(p), []).append(i)
  waiting, labeled = set(pending.remaining), set(pool.labeled.tolist())
  chosen, repeated = {}, 0
  for name in sorted(masks):
    found = by_stem.get(name, [])
    queried = [i for i in found if i in waiting]
    if len(queried) > 1:
      raise JalError(f'--labels {source}: the mask {name} matches {len(queried)} queried images '
                     f'by name ({", ".join(paths[i] for i in queried)}); rename one of them')
    if queried:
      chosen[queried[0]] = masks[name]
    elif any(i in labeled for i in found):
      repeated += 1
    elif found:
      raise JalError(f'--labels {source}: {paths[found[0]]} is not in round {pending.round}\'s '
                     f'query (queries/round_{pending.round}/query.csv lists the images to label)')
    else:
      raise JalError(f'--labels {source}: the mask {name} names no image of this labeling '
                     'project; masks are named by the image\'s file name without its extension')
  order = [i for i in pending.remaining if i in chosen]
  return tuple((i, chosen[i]) for i in order), repeated


def import_masks(workdir: str, state: checkpoint.RunState, source: str,
                 ckpt: checkpoint.Checkpointer, project, image_size: int
                 ) -> tuple[checkpoint.RunState, str]:
  """Imports a person's masks for a segmentation query: checks, stores, checkpoints.

  ``source`` is a folder of ``<stem>.png`` masks, a CVAT "Segmentation mask
  1.1" export or a Label Studio brush export (`jal.human.mask_files`); the
  masks are resized (nearest neighbour) to the run's ``image_size``. The file
  is stored in ``DIR/labels/`` before the checkpoint that holds its masks;
  images without a mask stay queued.

  Returns:
    The new state (already checkpointed; the old one if nothing changed) and
    a one-line report.

  Raises:
    JalError: no query waiting, or a problem with the file (nothing written).
  """
  from jal.human import mask_files  # pylint: disable=g-import-not-at-top
  pending, digest, earlier = _waiting_query(workdir, state, source)
  if earlier is not None:
    return state, f'{source} was already imported (as {earlier["file"]}); nothing changed'
  masks = mask_files.read_mask_answers(source, project.class_names,
                                       size=(image_size, image_size))
  answers, repeated = resolve_masks(masks, pending, state.pool, project.train_paths, source)
  waiting = len(pending.remaining)
  if not answers:
    raise JalError(f'--labels {source} answers none of the {waiting} images waiting in round '
                   f'{pending.round}\'s query (queries/round_{pending.round}/query.csv); paint '
                   'their masks and import again')
  copy = _store_masks(workdir, source, digest, pending.round)
  entry = {'file': copy, 'source': os.path.abspath(source), 'sha256': digest, 'kind': 'masks',
           'round': pending.round, 'labeled': len(answers), 'skipped': 0, 'repeated': repeated,
           'imported': datetime.datetime.now(datetime.timezone.utc).isoformat(
               timespec='seconds')}
  indices = np.array([i for i, _ in answers], np.int64)
  pool = state.pool.add(indices, np.stack([m for _, m in answers]).astype(np.uint8))
  still = dataclasses.replace(pending, answered=pending.answered + tuple(indices.tolist()))
  new = dataclasses.replace(state, pool=pool,
                            pending=still.to_json() if still.remaining else None,
                            imports=state.imports + [entry])
  ckpt.save(new)
  left = waiting - len(answers)
  report = (f'imported {source} (masks): {len(answers)} labeled' +
            (f', {repeated} repeated' if repeated else '') +
            f'; kept as {os.path.join(workdir, copy)}')
  return new, report + _still_queued(left, pending)
