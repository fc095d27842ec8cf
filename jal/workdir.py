"""The work directory: what jal writes there, and what it will touch.

A run's work directory is new, empty, or a jal run; anything else is refused.
A jal run is marked by ``jal_run.json`` (the jal version and the config),
written before anything else, so jal never mistakes a user's directory for
its own. jal deletes or rewrites only what it wrote:

  jal_run.json    the marker: jal's version and the run's config
  checkpoints/    one orbax checkpoint per round (the newest two): the state
  results.jsonl   one record per finished round  ┐ rendered from the
  accuracy.png    test accuracy against labels   ├ checkpoints, again on
  tensorboard/    every round's scalars          ┘ every start
  damaged/        checkpoints that failed to restore, moved here by --recover
  labels.csv      the labeled set, path,label (runs a person labels), rendered

A run a person labels (`jal.human`) also holds what jal never deletes, not
even with --overwrite, because a person's work is in it:

  queries/        each query to the person (query.csv may be filled in place)
  labels/         a copy of every label file imported

`inspect` reads a directory and refuses, with one line that says what is
wrong and what to do, every state jal cannot continue without guessing: a
directory of someone else's files, a run of another config, records without
their checkpoints, checkpoints without their marker. It writes nothing, so a
refused command leaves the directory as it was; `start` then writes, under
the directory's lock (`jal.dirlock`).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import os
import re
import shutil

import ml_collections

from jal.errors import JalError

MARKER = 'jal_run.json'
RESULTS = 'results.jsonl'
PLOT = 'accuracy.png'
CHECKPOINTS = 'checkpoints'
TENSORBOARD = 'tensorboard'
DAMAGED = 'damaged'
LABELS_CSV = 'labels.csv'
# What a run writes; --overwrite deletes these and nothing else.
RUN_FILES = (MARKER, CHECKPOINTS, RESULTS, PLOT, TENSORBOARD, DAMAGED, LABELS_CSV)
# What holds a person's work: never deleted (`jal.human`).
QUERIES = 'queries'
LABELS = 'labels'
PERSON_FILES = (QUERIES, LABELS)
# The config file of runs written before the marker existed (jal 0.1).
LEGACY_CONFIG = 'config.json'
# Temporary files of jal's atomic writes: `<name>.tmp`.
_TMP = '.tmp'
# What jal's subdirectories hold: orbax step directories (and their temporary
# names while being written), TensorBoard event files, set-aside checkpoints.
_OWN_ENTRIES = {
    CHECKPOINTS: re.compile(r'\d+(\.orbax-checkpoint-tmp.*)?'),
    TENSORBOARD: re.compile(r'events\.out\.tfevents\..+'),
    DAMAGED: re.compile(r'(checkpoint-\d+|results)-\d{8}T\d{6}(\.jsonl)?(-\d+)?'),
}


# A comparison's directory (`jal.comparison`): its marker, its summary, and
# one run directory per (arm, seed) below it.
COMPARISON_MARKER = 'jal_comparison.json'


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def fingerprint(config: ml_collections.ConfigDict | dict) -> str:
  """The SHA-256 of the config's canonical JSON: what a checkpoint records of its config."""
  data = config if isinstance(config, dict) else config_to_dict(config)
  return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Inspection:
  """What `inspect` found, and what `start` will do.

  Attributes:
    path: the work directory.
    exists: whether it exists.
    marked: whether it holds the marker of this config (resume), else the
      marker is (re)written by `start`.
    delete: jal's entries `start` deletes first (``--overwrite``, or the
      leftovers of a run that never finished a round), relative to ``path``.
    checkpoint_steps: the checkpoint steps found (rounds finished).
    num_records: the records in ``results.jsonl`` (its non-empty lines).
  """
  path: str
  exists: bool
  marked: bool
  delete: tuple[str, ...] = ()
  checkpoint_steps: tuple[int, ...] = ()
  num_records: int = 0


def _fail(path: str, what: str, todo: str) -> JalError:
  return JalError(f'{path} {what}; {todo}')


def _read_json(path: str):
  with open(path) as f:
    return json.load(f)


def _count_lines(path: str) -> int:
  try:
    with open(path, 'rb') as f:
      return sum(1 for line in f if line.strip())
  except FileNotFoundError:
    return 0


def checkpoint_steps(path: str) -> tuple[int, ...]:
  """The finished checkpoint steps under ``<path>/checkpoints``, ascending."""
  try:
    names = os.listdir(os.path.join(path, CHECKPOINTS))
  except (FileNotFoundError, NotADirectoryError):
    return ()
  return tuple(sorted(int(n) for n in names if n.isdigit()))


def _own_entries(path: str, names: list[str]) -> tuple[list[str], list[str]]:
  """``(jal's entries, foreign entries)`` among ``names``, looking inside jal's
  subdirectories: a file there that jal did not write makes the subdirectory foreign."""
  own, foreign = [], []
  legacy = {LEGACY_CONFIG, LEGACY_CONFIG + _TMP}
  for name in sorted(names):
    base = name[:-len(_TMP)] if name.endswith(_TMP) else name
    if base not in RUN_FILES and name not in legacy:
      continue  # the user's: left alone, never counted as jal's
    full = os.path.join(path, name)
    pattern = _OWN_ENTRIES.get(name)
    if pattern is not None and os.path.isdir(full):
      strangers = [n for n in os.listdir(full) if not pattern.fullmatch(n)]
      if strangers:
        foreign.append(f'{name}/{strangers[0]}')
        continue
    elif pattern is not None or (name != base and os.path.isdir(full)):
      foreign.append(name)  # a file where jal keeps a directory, or the reverse
      continue
    own.append(name)
  return own, foreign


def inspect(path: str, config: ml_collections.ConfigDict, overwrite: bool = False) -> Inspection:
  """Checks that ``path`` may hold a run of ``config``, writing nothing.

  Args:
    path: the work directory.
    config: the run's config.
    overwrite: delete a jal run already there (jal's files only).

  Returns:
    What `start` does with the directory.

  Raises:
    JalError: ``path`` is a file, is not writable, holds files that are not
      a jal run's (even with ``overwrite``), holds a run of another config or
      of an older jal (unless ``overwrite``), or is inconsistent: records
      without checkpoints, checkpoints without ``jal_run.json``, a damaged
      ``jal_run.json``. Each names the problem and the way out.
  """
  if not os.path.exists(path):
    return Inspection(path, exists=False, marked=False)
  if not os.path.isdir(path):
    raise _fail(path, 'is a file', 'give a directory as --workdir')
  if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
    raise _fail(path, 'is not writable by you', 'choose another --workdir or fix its '
                'permissions')
  names = os.listdir(path)
  own, foreign = _own_entries(path, names)
  has = set(own)
  steps = checkpoint_steps(path) if CHECKPOINTS in has else ()
  if MARKER not in has:
    leftovers = [n for n in own if n != MARKER + _TMP]
    if not leftovers:
      if len(own) < len(names):
        shown = ', '.join(sorted(names)[:3]) + (', ...' if len(names) > 3 else '')
        raise _fail(path, f'is not empty and is not a jal run (it holds {shown}; no {MARKER})',
                    'choose a new or empty --workdir')
      return Inspection(path, exists=True, marked=False, delete=tuple(own))  # a marker's .tmp
    # jal's names without jal's marker: jal cannot tell that it wrote them.
    yourself = 'move or delete it yourself (jal deletes only runs it can tell are its own)'
    if LEGACY_CONFIG in has:
      raise _fail(path, f'holds a run of an older jal ({LEGACY_CONFIG}, no {MARKER}), whose '
                  f'config keys have changed', f'choose another --workdir, or {yourself}')
    if steps:
      raise _fail(path, f'holds {CHECKPOINTS}/ but no {MARKER}, the file that says which '
                  'config they belong to', f'restore {MARKER} (was it deleted?), or {yourself}')
    raise _fail(path, f'holds {leftovers[0]} but no {MARKER}, so it is not a jal run',
                f'choose another --workdir, or move {leftovers[0]} out')
  redo = '--overwrite to delete that run (jal\'s files only) and start again'
  if overwrite:
    return _deleting(path, own, foreign)
  try:
    stored = _read_json(os.path.join(path, MARKER))['config']
  except (OSError, ValueError, KeyError, TypeError) as e:
    raise _fail(os.path.join(path, MARKER), f'is damaged ({type(e).__name__})',
                f'restore it from a backup, or pass {redo}') from None
  current = config_to_dict(config)
  records = _count_lines(os.path.join(path, RESULTS))
  if stored == current:
    if records and not steps:
      raise _fail(path, f'holds {records} rounds in {RESULTS} but no checkpoint, which a run '
                  f'resumes from', f'restore {CHECKPOINTS}/ (was it deleted?), or pass {redo}')
    return Inspection(path, exists=True, marked=True, checkpoint_steps=steps,
                      num_records=records)
  if steps or records:
    a, b = _flatten(stored), _flatten(current)
    diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    raise _fail(path, f'holds a run of a different config (differs in {", ".join(diff[:6])}'
                f'{", ..." if len(diff) > 6 else ""})', f'choose another --workdir, or pass '
                f'{redo}')
  # A run that never finished a round: its leftovers go, the marker is rewritten.
  return _deleting(path, own, foreign)


def _deleting(path: str, own: list[str], foreign: list[str]) -> Inspection:
  """An inspection that deletes jal's entries, refused if one holds a file jal did not
  write or the run holds a person's answers."""
  answered = [n for n in PERSON_FILES
              if os.path.isdir(os.path.join(path, n)) and os.listdir(os.path.join(path, n))]
  if answered:
    raise _fail(path, f'holds {answered[-1]}/, the queries and labels a person answered, which '
                'jal never deletes', f'move {" and ".join(f"{n}/" for n in answered)} out of it '
                'first (or choose another --workdir)')
  if foreign:
    raise _fail(path, f'holds {foreign[0]}, which jal did not write, where jal would delete',
                'move it out, then run again')
  return Inspection(path, exists=True, marked=False, delete=tuple(own))


def start(inspection: Inspection, config: ml_collections.ConfigDict) -> None:
  """Prepares the directory `inspect` accepted: deletes what it listed, then
  writes the marker (unless the run resumes). Call it holding the lock.

  Raises:
    JalError: a file cannot be written or deleted (naming it).
  """
  path = inspection.path
  try:
    for name in inspection.delete:
      target = os.path.join(path, name)
      if os.path.isdir(target) and not os.path.islink(target):
        shutil.rmtree(target)
      else:
        os.remove(target)
    if not inspection.marked:
      write_marker(path, config)
  except OSError as e:
    raise os_error(e, 'check the --workdir and its disk') from None


def write_marker(path: str, config: ml_collections.ConfigDict) -> None:
  """Writes ``jal_run.json`` (jal's version, the time, the config), atomically."""
  _write_marker(os.path.join(path, MARKER), config=config_to_dict(config))


def _write_marker(target: str, **fields) -> None:
  from jal import __version__
  marker = {'jal_version': __version__,
            'created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            **fields}
  with open(target + _TMP, 'w') as f:
    json.dump(marker, f, indent=2, sort_keys=True)
  os.replace(target + _TMP, target)


def inspect_comparison(path: str, must_exist: bool = False) -> bool:
  """Checks that ``path`` may hold a comparison, writing nothing; returns whether it holds one.

  Raises:
    JalError: ``path`` is a file, or is neither new, empty nor a jal
      comparison (``jal_comparison.json``); or, with ``must_exist``, holds no
      comparison.
  """
  if not os.path.exists(path) or (os.path.isdir(path) and not os.listdir(path)):
    if must_exist:
      raise _fail(path, 'holds no comparison', 'give the --workdir of a python -m jal.compare '
                  'run')
    return False
  if not os.path.isdir(path):
    raise _fail(path, 'is a file', 'give a directory as --workdir')
  if os.path.exists(os.path.join(path, COMPARISON_MARKER)):
    return True
  names = sorted(os.listdir(path))
  shown = ', '.join(names[:3]) + (', ...' if len(names) > 3 else '')
  raise _fail(path, f'is not empty and is not a jal comparison (it holds {shown}; no '
              f'{COMPARISON_MARKER})', 'choose a new or empty --workdir')


def start_comparison(path: str) -> None:
  """Writes the comparison's marker (jal's version and the time) unless it is there."""
  target = os.path.join(path, COMPARISON_MARKER)
  if not os.path.exists(target):
    _write_marker(target)


def set_aside(path: str, name: str, stamp: str) -> str:
  """Moves ``<path>/<name>`` to ``<path>/damaged/<stem>-<stamp>``: kept, out of jal's way.

  Returns:
    The new path.
  """
  stem = f'checkpoint-{os.path.basename(name)}' if name.startswith(CHECKPOINTS) else 'results'
  suffix = '.jsonl' if name == RESULTS else ''
  os.makedirs(os.path.join(path, DAMAGED), exist_ok=True)
  target = os.path.join(path, DAMAGED, f'{stem}-{stamp}{suffix}')
  n = 1
  while os.path.exists(target):
    n += 1
    target = os.path.join(path, DAMAGED, f'{stem}-{stamp}{suffix}-{n}')
  os.replace(os.path.join(path, name), target)
  return target


def os_error(e: OSError, todo: str) -> JalError:
  """One line for a failed file operation: what failed, on which file, and ``todo``."""
  what = e.strerror or type(e).__name__
  where = f': {e.filename}' if e.filename else ''
  return JalError(f'{what}{where}; {todo}')


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(_flatten(v, key + '.'))
    else:
      out[key] = v
  return out
