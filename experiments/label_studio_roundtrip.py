r"""A human-oracle round trip through a real, local Label Studio server.

jal's human oracle writes a query folder ``DIR/queries/round_<r>/`` with
Label Studio's import format (``label_config.xml`` and ``tasks.json``) and
reads the answers back from a Label Studio export (JSON or JSON-MIN, see
``jal.human.label_files``). This script makes that round trip with the real
program instead of hand-written exports, so that jal's reader is tested
against what Label Studio actually writes (and jal's writer against what it
actually accepts):

1. starts ``label-studio`` headless in a fresh data folder, serving local
   files with the labeling project's folder (``--project``) as
   ``LOCAL_FILES_DOCUMENT_ROOT``;
2. creates a project from the query's ``label_config.xml`` and imports its
   ``tasks.json`` through the REST API (user token), then checks that the
   predictions' scores were kept, that Label Studio orders the tasks by them
   and that it serves every task's image;
3. submits annotations through the same API from ``--answers``, a CSV with
   the columns ``path,label`` and optionally ``annotator``: ``path`` is the
   task's ``jal_path``, ``label`` a choice of the labeling interface (``skip``
   included), empty to leave the task unannotated, or ``cancel`` to skip the
   task in Label Studio's own sense (a cancelled annotation, as its "Skip"
   button makes). A path on several rows gets several annotations; an
   ``annotator`` (an e-mail) other than the server's user is created and
   credited with the annotation;
4. exports the project as JSON and JSON-MIN into ``--out``
   (``export.json``, ``export_min.json``, byte for byte as served; with
   ``--all-tasks`` also ``export_all_tasks.json`` and
   ``export_min_all_tasks.json``, which include unannotated tasks);
5. stops the server.

Local files: Label Studio 1.23 serves ``/data/local-files/?d=<path>`` only
below a Local Files *storage connection* of some project, whose path must be
a strict subfolder of the document root; the script adds one (never synced)
for each top-level folder of the tasks' ``jal_path``.

  /tmp/lsvenv/bin/python experiments/label_studio_roundtrip.py \
      --project tests/fixtures/label_studio/project \
      --query tests/fixtures/label_studio/queries/round_1 \
      --answers tests/fixtures/label_studio/full/answers.csv \
      --out tests/fixtures/label_studio/full

It needs only the standard library; ``--label-studio`` names the program
(default: ``label-studio`` beside this Python, else on ``PATH``).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

USERNAME = 'jal@example.com'
CANCEL = 'cancel'


class RoundTripError(Exception):
  """A step failed; its message is the one line printed."""


def step(message: str) -> None:
  print(message, flush=True)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def default_label_studio() -> str:
  beside = os.path.join(os.path.dirname(sys.executable), 'label-studio')
  return beside if os.path.exists(beside) else (shutil.which('label-studio') or 'label-studio')


class Server:
  """A ``label-studio start`` process and its REST API."""

  def __init__(self, program: str, data_dir: str, document_root: str, port: int):
    self.program = program
    self.data_dir = data_dir
    self.document_root = document_root
    self.port = port
    self.base = f'http://127.0.0.1:{port}'
    self.token = secrets.token_hex(20)
    self.log_path = os.path.join(data_dir, 'server.log')
    self.process = None

  def start(self, timeout: float) -> float:
    env = dict(os.environ,
               LABEL_STUDIO_BASE_DATA_DIR=self.data_dir,
               LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED='true',
               LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=self.document_root,
               LATEST_VERSION_CHECK='false',  # no network: the check would stall
               COLLECT_ANALYTICS='false')
    command = [self.program, 'start', '--no-browser', '--internal-host', '127.0.0.1',
               '--port', str(self.port), '--data-dir', self.data_dir,
               '--username', USERNAME, '--password', secrets.token_hex(12),
               '--user-token', self.token, '--enable-legacy-api-token']
    start = time.monotonic()
    log = open(self.log_path, 'wb')  # pylint: disable=consider-using-with
    try:
      self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
    except OSError as e:
      raise RoundTripError(f'cannot run {self.program}: {e}') from None
    finally:
      log.close()
    while time.monotonic() - start < timeout:
      code = self.process.poll()
      if code is not None:
        raise RoundTripError(f'Label Studio exited with code {code} before it came up '
                             f'({self.last_log_line()}); log: {self.log_path}')
      try:
        self.request('GET', '/api/projects')
        return time.monotonic() - start
      except (urllib.error.URLError, ConnectionError, OSError):
        time.sleep(1)
    raise RoundTripError(f'Label Studio did not come up on port {self.port} within '
                         f'{timeout:.0f} s ({self.last_log_line()}); log: {self.log_path}')

  def last_log_line(self) -> str:
    try:
      with open(self.log_path, encoding='utf-8', errors='replace') as f:
        lines = [line.strip() for line in f if line.strip()]
      return 'last log line: ' + (lines[-1] if lines else '(empty)')
    except OSError:
      return 'no log'

  def stop(self) -> None:
    if self.process is None or self.process.poll() is not None:
      return
    for sig, wait in ((signal.SIGINT, 15), (signal.SIGTERM, 10), (signal.SIGKILL, None)):
      self.process.send_signal(sig)  # Ctrl-C first, as in a terminal
      try:
        self.process.wait(timeout=wait)
        return
      except subprocess.TimeoutExpired:
        continue

  def request(self, method: str, path: str, body=None, params=None, raw: bool = False):
    url = self.base + path
    if params:
      url += '?' + urllib.parse.urlencode(params, doseq=True)
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Authorization', f'Token {self.token}')
    if data is not None:
      req.add_header('Content-Type', 'application/json')
    try:
      with urllib.request.urlopen(req, timeout=120) as response:
        content = response.read()
    except urllib.error.HTTPError as e:
      detail = e.read().decode(errors='replace')[:500]
      raise RoundTripError(f'{method} {path} -> HTTP {e.code}: {detail}') from None
    return content if raw else json.loads(content)


def read_answers(path: str) -> list[dict]:
  with open(path, newline='', encoding='utf-8') as f:
    reader = csv.DictReader(f)
    missing = {'path', 'label'} - set(reader.fieldnames or ())
    if missing:
      raise RoundTripError(f'--answers {path}: missing column(s) {sorted(missing)}; '
                           'expected path,label[,annotator]')
    return [{'path': row['path'].strip(), 'label': (row['label'] or '').strip(),
             'annotator': (row.get('annotator') or '').strip()} for row in reader]


def choices_of(label_config: str) -> tuple[str, str, list[str]]:
  """The Choices tag's name, its toName and its choice values."""
  tag = ET.fromstring(label_config).find('.//Choices')
  if tag is None:
    raise RoundTripError('label_config.xml has no <Choices> tag')
  return tag.get('name'), tag.get('toName'), [c.get('value') for c in tag.iter('Choice')]


def roundtrip(args, server: Server) -> None:
  with open(os.path.join(args.query, 'label_config.xml'), encoding='utf-8') as f:
    label_config = f.read()
  with open(os.path.join(args.query, 'tasks.json'), encoding='utf-8') as f:
    tasks = json.load(f)
  from_name, to_name, choices = choices_of(label_config)
  answers = read_answers(args.answers)

  version = server.request('GET', '/api/version').get('release', '?')
  project = server.request('POST', '/api/projects', {
      'title': f'jal {os.path.basename(os.path.normpath(args.query))}',
      'label_config': label_config})
  pid = project['id']
  step(f'[project] created project {pid} from {args.query}/label_config.xml '
       f'(Label Studio {version}; choices {choices})')

  imported = server.request('POST', f'/api/projects/{pid}/import', tasks)
  step(f'[import] {imported["task_count"]} tasks, {imported["prediction_count"]} predictions '
       f'from {args.query}/tasks.json')
  if imported['task_count'] != len(tasks):
    raise RoundTripError(f'imported {imported["task_count"]} of {len(tasks)} tasks')

  # Every task, with the score Label Studio kept for its prediction.
  listed = server.request('GET', '/api/tasks', params={'project': pid, 'fields': 'all',
                                                        'page_size': 100000})
  by_path = {t['data']['jal_path']: t for t in listed['tasks']}
  expected = {t['data']['jal_path']: t['predictions'][0]['score']
              for t in tasks if t.get('predictions')}
  wrong = [p for p, s in expected.items() if by_path[p].get('predictions_score') != s]
  if wrong:
    raise RoundTripError(f'prediction scores not kept for {wrong}')
  view = server.request('POST', '/api/dm/views', {
      'project': pid,
      'data': {'title': 'score ascending', 'ordering': ['tasks:predictions_score']}})
  ordered = server.request('GET', '/api/tasks', params={'project': pid, 'view': view['id'],
                                                         'fields': 'all', 'page_size': 100000})
  ordered = [t['data']['jal_path'] for t in ordered['tasks']
             if t['data']['jal_path'] in expected]
  if ordered != sorted(expected, key=expected.get):
    raise RoundTripError(f'Label Studio does not order by prediction score: {ordered}')
  step(f'[import] prediction scores kept for {len(expected)} tasks; '
       'ordering by tasks:predictions_score matches them')

  # Local files: a storage connection on each top-level folder (never synced).
  tops = sorted({p.split('/')[0] for p in by_path if '/' in p})
  for top in tops:
    server.request('POST', '/api/storages/localfiles', {
        'project': pid, 'title': f'jal {top}', 'path': os.path.join(server.document_root, top),
        'use_blob_urls': True})
  served = 0
  for path, task in by_path.items():
    content = server.request('GET', task['data']['image'], raw=True)
    with open(os.path.join(server.document_root, path), 'rb') as f:
      if f.read() != content:
        raise RoundTripError(f'{task["data"]["image"]} is not {path}')
    served += 1
  step(f'[local files] storage connection(s) on {tops} under {server.document_root}; '
       f'{served}/{len(by_path)} images served as {args.project}/<jal_path>')

  # Annotations.
  users = {USERNAME: None}
  counts = {'answered': 0, 'cancelled': 0, 'left': 0}
  for row in answers:
    task = by_path.get(row['path'])
    if task is None:
      raise RoundTripError(f'--answers: {row["path"]} is no task of {args.query}/tasks.json')
    label, annotator = row['label'], row['annotator'] or USERNAME
    if not label:
      counts['left'] += 1
      continue
    if annotator not in users:
      user = server.request('POST', '/api/users', {'email': annotator,
                                                   'username': annotator.split('@')[0]})
      users[annotator] = user['id']
    body, params = {}, None
    if users[annotator] is not None:
      body['completed_by'] = users[annotator]
    if label == args.cancel_label:
      # What the labeling UI's "Skip" button sends.
      body.update(result=[], was_cancelled=True)
      params = {'was_cancelled': 1}
      counts['cancelled'] += 1
    elif label in choices:
      body['result'] = [{'from_name': from_name, 'to_name': to_name, 'type': 'choices',
                         'value': {'choices': [label]}}]
      counts['answered'] += 1
    else:
      raise RoundTripError(f'--answers: {label!r} for {row["path"]} is not one of {choices} '
                           f'nor {args.cancel_label!r}')
    server.request('POST', f'/api/tasks/{task["id"]}/annotations', body, params=params)
  annotated = {r['path'] for r in answers if r['label']}
  step(f'[annotate] {counts["answered"]} annotations, {counts["cancelled"]} cancelled, '
       f'{len(by_path) - len(annotated)} tasks unannotated; annotators {sorted(users)}')

  # Exports, byte for byte.
  os.makedirs(args.out, exist_ok=True)
  variants = [('', {})]
  if args.all_tasks:
    variants.append(('_all_tasks', {'download_all_tasks': 'true'}))
  for suffix, extra in variants:
    for export_type, name in (('JSON', 'export'), ('JSON_MIN', 'export_min')):
      content = server.request('GET', f'/api/projects/{pid}/export',
                               params={'exportType': export_type, **extra}, raw=True)
      target = os.path.join(args.out, f'{name}{suffix}.json')
      with open(target, 'wb') as f:
        f.write(content)
      step(f'[export] {export_type}{" (all tasks)" if extra else ""}: '
           f'{len(json.loads(content))} entries, {len(content)} bytes -> {target}')


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--project', required=True,
                      help="the labeling project's folder: jal_path is relative to it")
  parser.add_argument('--query', required=True,
                      help='DIR/queries/round_<r>, with label_config.xml and tasks.json')
  parser.add_argument('--answers', required=True, help='CSV: path,label[,annotator]')
  parser.add_argument('--out', required=True, help='folder for export.json and export_min.json')
  parser.add_argument('--all-tasks', action='store_true',
                      help='also export with download_all_tasks=true (*_all_tasks.json)')
  parser.add_argument('--cancel-label', default=CANCEL,
                      help='the answer submitted as a cancelled (skipped) annotation')
  parser.add_argument('--data-dir', default=None,
                      help="Label Studio's data folder (default: a temporary one, removed)")
  parser.add_argument('--port', type=int, default=0, help='default: a free one')
  parser.add_argument('--label-studio', default=default_label_studio(),
                      help='the label-studio program')
  parser.add_argument('--timeout', type=float, default=240,
                      help='seconds to wait for the server to come up')
  args = parser.parse_args()
  args.project = os.path.abspath(args.project)

  began = time.monotonic()
  data_dir = args.data_dir or tempfile.mkdtemp(prefix='jal_label_studio_')
  os.makedirs(data_dir, exist_ok=True)
  server = Server(args.label_studio, os.path.abspath(data_dir), args.project,
                  args.port or free_port())
  failed = True
  try:
    took = server.start(args.timeout)
    step(f'[server] Label Studio up at {server.base} after {took:.1f} s '
         f'(data {server.data_dir}, local files root {args.project})')
    roundtrip(args, server)
    failed = False
  except RoundTripError as e:
    kept = f' (Label Studio data kept in {data_dir})' if args.data_dir is None else ''
    print(f'error: {e}{kept}', file=sys.stderr, flush=True)
  finally:
    if server.process is not None:
      server.stop()
      step(f'[server] stopped (exit code {server.process.returncode})')
    if args.data_dir is None and not failed:
      shutil.rmtree(data_dir, ignore_errors=True)
  if not failed:
    step(f'[done] in {time.monotonic() - began:.1f} s')
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
