"""Importing a person's answers (jal.human.answers): what a label file changes, every bad file as
one line with the work directory byte-identical afterwards, a file imported twice, and kills at
every write of an import leaving the old state or the new one."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import zipfile

import numpy as np
import pytest

from conftest import snapshot
from jal import checkpoint, pool as pool_lib
from jal.errors import JalError
from jal.human import answers, query

PATHS = ('labeled/cat/l0.png', 'labeled/airplane/l1.png', 'unlabeled/a.png', 'unlabeled/b.jpg',
         'unlabeled/sub/c.png', 'unlabeled/sub/d.png', 'unlabeled/e.png', 'unlabeled/x/c.png')
CLASSES = ('airplane', 'cat')
RUN = 'abc123def456'
# Round 1's query: four images, best first; l0, l1 labeled in round 0.
PENDING = query.Pending(1, (4, 2, 6, 3), (0.9, 0.8, 0.7, 0.6), (1, 0, 0, 1), (0.6, 0.7, 0.9, 0.5))


def _state(pending=PENDING):
  pool = pool_lib.Pool(len(PATHS), np.array([0, 1]), np.array([1, 0], np.int32))
  return checkpoint.RunState(1, pool, [{'round': 0}], pending=pending and pending.to_json())


@pytest.fixture
def run(tmp_path):
  """A work directory whose checkpoint waits for the answers to `PENDING`."""
  workdir = tmp_path / 'run'
  ckpt = checkpoint.Checkpointer(str(workdir / 'checkpoints'))
  ckpt.save(_state())
  yield workdir, ckpt
  ckpt.close()


def _import(workdir, ckpt, source, state=None):
  return answers.import_labels(str(workdir), state or ckpt.latest(), str(source), ckpt, PATHS,
                               CLASSES, 'skip', RUN)


def _csv(path, rows, header='path,rank,score,predicted,probability,round,run,label'):
  path.write_text(header + '\n' + ''.join(r + '\n' for r in rows))
  return path


def _row(image, label, round_=1, run=RUN):
  return f'{image},0,0.5,cat,0.5,{round_},{run},{label}'


def test_a_full_answer_labels_skips_and_ends_the_query(run, tmp_path):
  workdir, ckpt = run
  source = _csv(tmp_path / 'answers.csv', [
      _row('unlabeled/sub/c.png', 'cat'), _row('unlabeled/a.png', 'airplane'),
      _row('unlabeled/e.png', 'skip'), _row('unlabeled/b.jpg', 'cat')])
  state, report = _import(workdir, ckpt, source)
  assert state.pending is None
  np.testing.assert_array_equal(state.pool.labeled, [0, 1, 4, 2, 3])
  np.testing.assert_array_equal(state.pool.oracle_labels, [1, 0, 1, 0, 1])
  np.testing.assert_array_equal(state.pool.excluded, [6])
  assert '3 labeled, 1 skipped' in report
  # Stored first, as given; in the checkpoint; the import is recorded.
  copy = workdir / state.imports[0]['file']
  assert copy.read_bytes() == source.read_bytes()
  restored = ckpt.latest()
  assert restored.pending is None and restored.imports == state.imports
  np.testing.assert_array_equal(restored.pool.excluded, [6])
  assert ckpt.steps()[-1] == 2  # a new step: the round's checkpoint is never replaced


def test_a_partial_answer_keeps_the_rest_queued_and_a_later_file_may_repeat_it(run, tmp_path):
  workdir, ckpt = run
  first = _csv(tmp_path / 'first.csv', [_row('unlabeled/sub/c.png', 'cat'),
                                         _row('unlabeled/a.png', '')])
  state, report = _import(workdir, ckpt, first)
  assert query.Pending.from_json(state.pending).remaining == (2, 6, 3)
  assert '3 of the 4 images' in report and 'stay queued' in report
  second = _csv(tmp_path / 'second.csv', [
      _row('unlabeled/sub/c.png', 'cat'), _row('unlabeled/a.png', 'cat'),
      _row('unlabeled/e.png', 'airplane'), _row('unlabeled/b.jpg', 'cat')])
  state, report = _import(workdir, ckpt, second)
  assert state.pending is None and '1 repeated' in report
  np.testing.assert_array_equal(state.pool.labeled, [0, 1, 4, 2, 6, 3])


def test_the_same_answer_twice_in_a_file_is_one_label(run, tmp_path):
  workdir, ckpt = run
  source = _csv(tmp_path / 'a.csv', [_row('unlabeled/a.png', 'cat'), _row('unlabeled/a.png', 'cat')])
  state, report = _import(workdir, ckpt, source)
  assert '1 labeled' in report
  np.testing.assert_array_equal(state.pool.labeled, [0, 1, 2])


def test_the_same_file_twice_changes_nothing_and_says_so(run, tmp_path):
  workdir, ckpt = run
  source = _csv(tmp_path / 'a.csv', [_row('unlabeled/a.png', 'cat')])
  state, _ = _import(workdir, ckpt, source)
  before = snapshot(workdir)
  again, report = _import(workdir, ckpt, source, state)
  assert again is state and 'already imported' in report and 'nothing changed' in report
  assert snapshot(workdir) == before


def _ls_task(image, choices=None, cancelled=False, round_=1, run=RUN, **data):
  annotations = []
  if choices is not None or cancelled:
    result = [] if cancelled else [{'from_name': 'label', 'to_name': 'image', 'type': 'choices',
                                    'value': {'choices': choices}}]
    annotations.append({'result': result, 'was_cancelled': cancelled})
  return {'id': 7, 'annotations': annotations,
          'data': {'jal_path': image, 'jal_round': round_, 'jal_run': run, **data}}


def _json(path, value):
  path.write_text(json.dumps(value))
  return path


def _zip(path, members):
  with zipfile.ZipFile(path, 'w') as z:
    for name in members:
      z.writestr(name, b'not read')
  return path


def _folder(path, members):
  for name in members:
    os.makedirs(os.path.dirname(path / name), exist_ok=True)
    (path / name).write_bytes(b'x')
  return path


# Every bad label file: (how to make it, a piece of the one line it gets).
BAD_FILES = {
    'wrong round': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cat', round_=2)]),
                    "answers the query of round 2, but the query waiting is round 1's"),
    'unknown class': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cta')]),
                      "unknown class 'cta'; did you mean 'cat'?"),
    'unknown image': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/zzz.png', 'cat')]),
                      'unlabeled/zzz.png is not an image of this labeling project'),
    'not in the query': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/sub/d.png', 'cat')]),
                         "unlabeled/sub/d.png is not in round 1's query"),
    'conflicting duplicate': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cat'),
                                                           _row('unlabeled/a.png', 'airplane')]),
                              'answers unlabeled/a.png again with another label (first at '
                              'line 2)'),
    'empty file': (lambda d: _csv(d / 'a.csv', []).write_text('') or d / 'a.csv', 'is empty'),
    'truncated JSON': (lambda d: (d / 'a.json').write_text('[{"data": {"jal_pa') and d / 'a.json',
                       'is not valid JSON (line 1'),
    'wrong CSV columns': (lambda d: _csv(d / 'a.csv', ['unlabeled/a.png,cat'],
                                         header='image,class'),
                          'needs path and label columns'),
    'zip path traversal': (lambda d: _zip(d / 'a.zip', ['cat/../../etc/passwd.png']),
                           'is not <label>/<image> inside the archive; refusing it'),
    'another run': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cat', run='fff')]),
                    'belongs to run fff, not to this run (abc123def456)'),
    'missing file': (lambda d: d / 'nope.csv', 'no such file or folder'),
    'unknown kind': (lambda d: (d / 'a.xlsx').write_text('x') and d / 'a.xlsx',
                     'unknown kind of label file'),
    'JSON not a list': (lambda d: _json(d / 'a.json', {'tasks': []}),
                        'a Label Studio export is a JSON list of tasks'),
    'task without jal_path': (lambda d: _json(d / 'a.json', [{'annotations': [],
                                                              'data': {'image': 'x'}}]),
                              'has no jal_path: import the tasks.json jal wrote'),
    'two choices': (lambda d: _json(d / 'a.json', [_ls_task('unlabeled/a.png', ['cat',
                                                                               'airplane'])]),
                    'an annotation chooses 2 classes'),
    'LS wrong round': (lambda d: _json(d / 'a.json', [_ls_task('unlabeled/a.png', ['cat'],
                                                               round_=0)]),
                       "answers the query of round 0"),
    'JSON-MIN two choices': (lambda d: _json(d / 'a.json', [{'jal_path': 'unlabeled/a.png',
                                                             'label': {'choices': ['a', 'b']}}]),
                             '2 classes chosen; choose one'),
    'changes an earlier answer': (lambda d: _csv(d / 'a.csv', [_row('labeled/cat/l0.png',
                                                                    'airplane')]),
                                  "labeled/cat/l0.png was already answered 'cat'"),
    'answers nothing': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', '')]),
                        'answers none of the 4 images waiting'),
    'not a zip': (lambda d: (d / 'a.zip').write_text('PK nonsense') and d / 'a.zip',
                  'is not a readable zip'),
    'file beside the class folders': (lambda d: _folder(d / 'answers', ['cat/a.png', 'x.png']),
                                      "member 'x.png' is not <label>/<image>"),
    'extra CSV fields': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cat') + ',x']),
                         'line 2: more fields than the header has'),
    'round not a number': (lambda d: _csv(d / 'a.csv', [_row('unlabeled/a.png', 'cat',
                                                             round_='one')]),
                           "round 'one' is not a number"),
    'ambiguous name': (lambda d: _zip(d / 'a.zip', ['cat/c.jpg']),
                       'c.jpg matches 2 queried images by name'),
}
PENDING_WITH_TWO_C = query.Pending(1, (4, 7, 2), (None,) * 3, (None,) * 3, (None,) * 3)


@pytest.mark.parametrize('case', sorted(BAD_FILES))
def test_a_bad_label_file_is_one_line_and_changes_nothing(tmp_path, case):
  make, message = BAD_FILES[case]
  workdir = tmp_path / 'run'
  ckpt = checkpoint.Checkpointer(str(workdir / 'checkpoints'))
  try:
    ckpt.save(_state(PENDING_WITH_TWO_C if case == 'ambiguous name' else PENDING))
    source = make(tmp_path)
    before = snapshot(workdir)
    with pytest.raises(JalError) as raised:
      _import(workdir, ckpt, source)
  finally:
    ckpt.close()
  text = str(raised.value)
  assert message in text and '\n' not in text, text
  assert snapshot(workdir) == before


def test_no_query_waiting_is_one_line(tmp_path):
  ckpt = checkpoint.Checkpointer(str(tmp_path / 'checkpoints'))
  source = _csv(tmp_path / 'a.csv', [_row('unlabeled/a.png', 'cat')])
  with pytest.raises(JalError, match='no query is waiting for answers'):
    answers.import_labels(str(tmp_path), _state(None), str(source), ckpt, PATHS, CLASSES,
                          'skip', RUN)
  ckpt.close()


def test_cvat_and_folder_answers_match_by_path_below_the_label_or_a_unique_name(run, tmp_path):
  workdir, ckpt = run
  # CVAT keeps the frame's path (here with another extension); a flat folder only the name.
  source = _zip(tmp_path / 'cvat.zip', ['cat/unlabeled/sub/c.jpeg', 'airplane/a.png',
                                        'no_label/unlabeled/b.jpg', 'skip/unlabeled/e.png'])
  state, report = _import(workdir, ckpt, source)
  assert 'cvat-imagenet' in report and '2 labeled, 1 skipped' in report
  np.testing.assert_array_equal(state.pool.labeled[2:], [2, 4])  # in the file's (sorted) order
  folder = _folder(tmp_path / 'sorted', ['cat/b.jpg'])
  state, _ = _import(workdir, ckpt, folder, state)
  assert state.pending is None
  stored = (workdir / state.imports[-1]['file']).read_text()
  assert stored == 'label,image\ncat,b.jpg\n'


def _killed_import_setup(tmp_path):
  """A label file of one answer and one skip, and a work directory waiting for it."""
  source = _csv(tmp_path / 'a.csv', [_row('unlabeled/sub/c.png', 'cat'),
                                     _row('unlabeled/e.png', 'skip')])
  base = tmp_path / 'base'
  ckpt = checkpoint.Checkpointer(str(base / 'checkpoints'))
  ckpt.save(_state())
  ckpt.close()
  return source, base


class Killed(BaseException):
  """The process dies here: nothing in jal or orbax catches a BaseException."""


def _writes(monkeypatch, kill_at):
  """Counts the import's writes on the main thread (renames, syncs, directory creations) and
  dies at ``kill_at``.

  Writes on orbax's own threads are not kill points here: an exception raised in one of them
  stops that thread only, and what orbax then cleans up on its other threads is not what a
  killed process leaves (it raced with the next import in CI). Those writes are killed for
  real, with SIGKILL, in the next test.
  """
  import threading
  calls = []
  for module, name in ((os, 'replace'), (os, 'rename'), (os, 'fsync'), (os, 'makedirs'),
                       (os, 'mkdir')):
    original = getattr(module, name)

    def wrapped(*args, _original=original, **kwargs):
      if threading.current_thread() is threading.main_thread():
        calls.append(1)
        if len(calls) == kill_at:
          raise Killed
      return _original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapped)
  return calls


def test_a_kill_at_any_write_of_an_import_leaves_the_old_state_or_the_new(tmp_path,
                                                                          monkeypatch):
  source, base = _killed_import_setup(tmp_path)

  def outcome(path):
    ckpt = checkpoint.Checkpointer(str(path / 'checkpoints'))
    try:
      state = ckpt.latest()
      return (state.pool.labeled.tolist(), state.pool.excluded.tolist(), state.pending,
              len(state.imports))
    finally:
      ckpt.close()

  old = outcome(base)
  done = tmp_path / 'done'
  shutil.copytree(base, done)
  ckpt = checkpoint.Checkpointer(str(done / 'checkpoints'))
  _import(done, ckpt, source)
  ckpt.close()
  new = outcome(done)
  assert new != old
  kill_at, seen = 1, set()
  while True:
    workdir = tmp_path / f'kill{kill_at}'
    shutil.copytree(base, workdir)
    with monkeypatch.context() as patch:
      calls = _writes(patch, kill_at)
      ckpt = checkpoint.Checkpointer(str(workdir / 'checkpoints'))
      try:
        _import(workdir, ckpt, source)
        finished = True
      except Killed:
        finished = False
    ckpt._manager.close()  # pylint: disable=protected-access
    state = outcome(workdir)
    assert state in (old, new), (kill_at, state)
    seen.add(state == new)
    # Importing again after the kill ends as the uninterrupted import did.
    ckpt = checkpoint.Checkpointer(str(workdir / 'checkpoints'))
    try:
      if state == old:
        _import(workdir, ckpt, source)
    finally:
      ckpt.close()
    assert outcome(workdir) == new
    if finished:
      break
    kill_at += 1
  assert len(calls) >= 4 and seen == {False, True}, (len(calls), seen)


_CHILD = r'''
import os, signal, sys
import numpy as np
sys.path[:0] = [os.environ['JAL_TESTS'], os.path.join(os.environ['JAL_REPO'], 'tests'),
                os.environ['JAL_REPO']]
import test_answers as t
from jal import checkpoint
kill_at, calls = int(os.environ['KILL_AT']), []
for name in ('replace', 'rename', 'fsync', 'makedirs', 'mkdir'):
  original = getattr(os, name)
  def wrapped(*args, _original=original, **kwargs):
    calls.append(1)
    if len(calls) == kill_at:
      os.kill(os.getpid(), signal.SIGKILL)
    return _original(*args, **kwargs)
  setattr(os, name, wrapped)
workdir = os.environ['WORKDIR']
ckpt = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints'))
state, _ = t._import(t.pathlib.Path(workdir), ckpt, os.environ['SOURCE'])
ckpt.close()
t.query.write_labels_csv(workdir, state.pool, t.PATHS, t.CLASSES)  # what the loop writes next
'''


def test_a_real_sigkill_inside_an_import_leaves_the_old_state_or_the_new(tmp_path):
  """The same property with the process really killed (SIGKILL): at the import's first write
  (of 14), inside orbax's save (on its threads), at the rename that commits the checkpoint, and
  at the write after the import (labels.csv)."""
  import signal
  import subprocess
  import sys
  from conftest import REPO
  source, base = _killed_import_setup(tmp_path)
  seen = set()
  for kill_at in (1, 8, 14, 15):
    workdir = tmp_path / f'kill{kill_at}'
    shutil.copytree(base, workdir)
    env = dict(os.environ, KILL_AT=str(kill_at), WORKDIR=str(workdir), SOURCE=str(source),
               JAL_TESTS=os.path.dirname(__file__), JAL_REPO=REPO, JAX_PLATFORMS='cpu')
    child = subprocess.run([sys.executable, '-c', _CHILD], env=env, capture_output=True,
                           timeout=120, check=False)
    assert child.returncode in (0, -signal.SIGKILL), child.stderr.decode()[-2000:]
    ckpt = checkpoint.Checkpointer(str(pathlib.Path(workdir) / 'checkpoints'))
    try:
      state = ckpt.latest()
      seen.add(len(state.imports))
      if not state.imports:  # the old state, untouched: the import runs again
        assert state.pool.labeled.tolist() == [0, 1] and not state.pool.excluded.size
        state, _ = _import(workdir, ckpt, source, state)
      assert state.pool.labeled.tolist() == [0, 1, 4] and state.pool.excluded.tolist() == [6]
      assert len(state.imports) == 1
    finally:
      ckpt.close()
  assert seen == {0, 1}
