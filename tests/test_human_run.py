"""A person as the oracle, end to end on the command line (jal.main with configs/label_images.py,
jal.predict): a labeling project of generated images, every query answered through query.csv by
a script playing the annotator, a partial answer, a skip, the files each query writes, the
labeled set in labels.csv, the model at the end; and a project without a test split."""

from __future__ import annotations

import csv
import json
import os
import shlex

import numpy as np
import pytest
from PIL import Image

from conftest import REPO, snapshot
from jal import cli, main, predict, workdir as workdir_lib
from jal.human import query

CONFIG = os.path.join(REPO, 'configs', 'label_images.py') + ':runlocal'
CHEAP = ['--config.initial_pool.name=random', '--config.train.epochs=1',
         '--config.model.width=4']
COLOURS = {'red': 0, 'blue': 2}


def make_project(root, num_unlabeled=24, num_test=6, test=True):
  """Red and blue noise images of several sizes and formats; the colour is the class."""
  rng = np.random.default_rng(0)
  truth = {}
  for split, count in (('unlabeled', num_unlabeled), ('test', num_test if test else 0)):
    for i in range(count):
      name = ('red', 'blue')[i % 2]
      image = rng.integers(0, 60, (12 + i % 4, 15, 3)).astype(np.uint8)
      image[..., COLOURS[name]] += 150
      folder = os.path.join(root, split, name if split == 'test' else f'part{i % 3}')
      os.makedirs(folder, exist_ok=True)
      path = os.path.join(folder, f'{split}_{i:02d}.{"png" if i % 3 else "jpg"}')
      Image.fromarray(image).save(path)
      truth[os.path.relpath(path, root)] = name
  return truth


def annotate(query_csv, truth, out, limit=None, skip=()):
  """Plays the annotator: fills the label column of the first ``limit`` rows."""
  with open(query_csv, newline='') as f:
    rows = list(csv.DictReader(f))
  for k, row in enumerate(rows):
    if limit is None or k < limit:
      row['label'] = 'skip' if row['path'] in skip else truth[row['path']]
  with open(out, 'w', newline='') as f:
    writer = csv.DictWriter(f, rows[0].keys())
    writer.writeheader()
    writer.writerows(rows)
  return rows


def run_command(capsys, program, *argv):
  status = cli.execute(program, ['jal', *argv])
  captured = capsys.readouterr()
  return status, captured.out.splitlines(), captured.err


def waiting_line(out):
  lines = [l for l in out if 'wait for labels' in l]
  assert len(lines) == 1, out
  return lines[0]


def test_three_rounds_answered_by_csv_then_predict(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv('TQDM_DISABLE', '1')
  root = tmp_path / 'project'
  truth = make_project(str(root))
  run = tmp_path / 'run'
  base = [f'--config={CONFIG}', f'--config.dataset.path={root}', f'--workdir={run}', *CHEAP]

  # Round 0's pool is the first query: nothing is trained before a person answers.
  status, out, err = run_command(capsys, main.main, *base)
  assert status == 0, err
  line = waiting_line(out)
  folder = query.round_dir(str(run), 0)
  assert f'6 images wait for labels in {folder}/' in line
  for name in (query.QUERY_CSV, query.TASKS_JSON, query.LABEL_CONFIG, query.CONTACT_SHEET):
    assert os.path.isfile(os.path.join(folder, name))
  command = line.split('then run: ', 1)[1]
  assert command.endswith(f'--labels {folder}/query.csv')
  assert shlex.split(command)[3:-2] == base  # the exact command that continues
  assert not os.path.exists(run / workdir_lib.RESULTS) or not (run / 'results.jsonl').read_text()

  # A partial answer: 4 of 6, one of them skipped; the rest stay queued.
  rows = annotate(os.path.join(folder, 'query.csv'), truth, tmp_path / 'a0.csv', limit=4)
  skipped = rows[0]['path']
  annotate(os.path.join(folder, 'query.csv'), truth, tmp_path / 'a0.csv', limit=4,
           skip={skipped})
  status, out, err = run_command(capsys, main.main, *base, f'--labels={tmp_path / "a0.csv"}')
  assert status == 0, err
  assert any('3 labeled, 1 skipped' in l and '2 of the 6 images' in l for l in out), out
  assert '2 images wait for labels' in waiting_line(out)
  # The rest: the file may repeat the first answers.
  annotate(os.path.join(folder, 'query.csv'), truth, tmp_path / 'a0b.csv', skip={skipped})
  status, out, err = run_command(capsys, main.main, *base, f'--labels={tmp_path / "a0b.csv"}')
  assert status == 0, err
  assert any(l.startswith('round 0: 5 labeled, test accuracy 0.') for l in out), out

  for round_ in (1, 2):
    folder = query.round_dir(str(run), round_)
    rows = annotate(os.path.join(folder, 'query.csv'), truth, tmp_path / f'a{round_}.csv')
    assert [r['rank'] for r in rows] == [str(k) for k in range(4)]
    assert all(r['predicted'] in COLOURS and r['score'] for r in rows)
    with open(os.path.join(folder, query.TASKS_JSON)) as f:
      tasks = json.load(f)
    assert [t['data']['jal_path'] for t in tasks] == [r['path'] for r in rows]
    assert [t['predictions'][0]['score'] for t in tasks] == pytest.approx(
        [float(r['score']) for r in rows], rel=1e-5)
    status, out, err = run_command(capsys, main.main, *base,
                                   f'--labels={tmp_path / f"a{round_}.csv"}')
    assert status == 0, err
  assert any(l.startswith('done: 3 rounds') for l in out), out

  records = [json.loads(l) for l in (run / 'results.jsonl').read_text().splitlines()]
  assert [r['num_labeled'] for r in records] == [5, 9, 13]
  assert all(0 <= r['test_accuracy'] <= 1 for r in records)
  with open(run / 'labels.csv', newline='') as f:
    labeled = list(csv.DictReader(f))
  assert len(labeled) == 13 and all(truth[r['path']] == r['label'] for r in labeled)
  assert skipped not in {r['path'] for r in labeled}
  assert len(os.listdir(run / 'labels')) == 4

  # What the user came for: the last task model labels new images.
  out_csv = tmp_path / 'predictions.csv'
  status, out, err = run_command(capsys, predict.main, f'--workdir={run}',
                                 f'--images={root / "test"}', f'--out={out_csv}')
  assert status == 0, err
  with open(out_csv, newline='') as f:
    predictions = list(csv.DictReader(f))
  assert len(predictions) == 6 and set(predictions[0]) == {
      'path', 'predicted', 'probability', 'p_red', 'p_blue'}
  for row in predictions:
    assert abs(float(row['p_red']) + float(row['p_blue']) - 1) < 1e-3
  # It refuses to overwrite what it wrote.
  status, _, err = run_command(capsys, predict.main, f'--workdir={run}',
                               f'--images={root / "test"}', f'--out={out_csv}')
  assert status == 2 and 'exists' in err and 'Traceback' not in err


def test_a_project_without_a_test_split_records_no_test_metrics(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv('TQDM_DISABLE', '1')
  root = tmp_path / 'project'
  truth = make_project(str(root), test=False)
  run = tmp_path / 'run'
  base = [f'--config={CONFIG}', f'--config.dataset.path={root}', f'--workdir={run}', *CHEAP,
          "--config.dataset.classes=('red','blue')", '--config.num_rounds=2']
  status, out, err = run_command(capsys, main.main, *base)
  assert status == 0, err
  annotate(os.path.join(query.round_dir(str(run), 0), 'query.csv'), truth, tmp_path / 'a.csv')
  status, out, err = run_command(capsys, main.main, *base, f'--labels={tmp_path / "a.csv"}')
  assert status == 0, err
  assert any(l.startswith('round 0: 6 labeled, test accuracy n/a') for l in out), out
  record = json.loads((run / 'results.jsonl').read_text().splitlines()[0])
  assert record['test_accuracy'] is None and 'no test/' in record['test_split']
  with open(run / 'labels.csv', newline='') as f:
    labels = [row['label'] for row in csv.DictReader(f)]
  # In the configured order: red, blue.
  assert record['labeled_class_counts'] == [labels.count('red'), labels.count('blue')]


@pytest.mark.parametrize('flags,message', [
    (['--labels=x.csv'], 'no query is waiting for answers'),
    (['--config.oracle.name=simulated'], 'a simulated oracle cannot answer'),
    (['--config.oracle.noise_rate=0.1'], "a person's are as given"),
    (['--config.dataset.max_train=10'], 'a labeling project is used as it is'),
])
def test_mistakes_with_a_labeling_project_are_one_line_and_write_nothing(tmp_path, capsys,
                                                                         flags, message):
  root = tmp_path / 'project'
  make_project(str(root), num_unlabeled=16, num_test=2)
  run = tmp_path / 'run'
  status, _, err = run_command(capsys, main.main, f'--config={CONFIG}',
                               f'--config.dataset.path={root}', f'--workdir={run}', *flags)
  assert status == 2 and message in err and len(err.strip().splitlines()) == 1, err
  assert not run.exists()


def test_the_python_round_trip_resumes_like_the_command_line(tmp_path, capsys, monkeypatch):
  monkeypatch.setenv('TQDM_DISABLE', '1')
  from configs import label_images
  from jal.learner import Learner
  root = tmp_path / 'project'
  truth = make_project(str(root), num_unlabeled=16, test=False)
  config = label_images.get_config('runlocal')
  config.dataset.path = str(root)
  config.dataset.classes = ('red', 'blue')
  config.initial_pool.name = 'random'
  config.train.epochs = 1
  config.model.width = 4
  config.num_rounds = 2
  learner = Learner(config, str(tmp_path / 'run'))
  first = learner.query()
  assert len(first) == 6 and [r['rank'] for r in first] == list(range(6))
  assert learner.query() == first  # asking again changes nothing
  second = learner.teach({r['path']: truth[r['path']] for r in first[:5]})
  assert [r['path'] for r in second] == [first[5]['path']]  # one still waits
  second = learner.teach({first[5]['path']: 'skip'})
  assert len(second) == 4 and all(r['predicted'] in COLOURS for r in second)
  assert [r['num_labeled'] for r in learner.records] == [5]
  # The command line continues the same run.
  answers = tmp_path / 'a.csv'
  with open(answers, 'w', newline='') as f:
    f.write('path,label\n' + ''.join(f"{r['path']},{truth[r['path']]}\n" for r in second))
  status, out, err = run_command(capsys, main.main, f'--config={CONFIG}',
                                 f'--config.dataset.path={root}', f'--workdir={tmp_path / "run"}',
                                 "--config.dataset.classes=('red','blue')", *CHEAP,
                                 '--config.num_rounds=2', f'--labels={answers}')
  assert status == 0, err
  assert any(l.startswith('done: 2 rounds') for l in out), out
  assert learner.query() == []


def _started_run(tmp_path):
  """A small project, its run's directory and the command's flags."""
  root = tmp_path / 'project'
  make_project(str(root), num_unlabeled=16, num_test=2)
  run = tmp_path / 'run'
  argv = [f'--config={CONFIG}', f'--config.dataset.path={root}', f'--workdir={run}', *CHEAP]
  return root, run, argv


def test_a_project_changed_after_the_start_is_refused_not_misread(tmp_path, capsys):
  root, run, argv = _started_run(tmp_path)
  status, out, err = run_command(capsys, main.main, *argv)
  assert status == 0 and 'wait for labels' in ' '.join(out), err
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'unlabeled' / 'a_new_one.png')
  before = snapshot(run)
  status, _, err = run_command(capsys, main.main, *argv)
  assert status == 2 and len(err.strip().splitlines()) == 1, err
  assert 'has changed since this run started (17 train images now, 16 then' in err
  assert snapshot(run) == before


def test_a_new_class_folder_after_the_start_is_refused_not_misread(tmp_path, capsys):
  root, run, argv = _started_run(tmp_path)
  status, _, err = run_command(capsys, main.main, *argv)
  assert status == 0, err
  # 'amber' sorts first: every stored class index would shift.
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / 'test' / 'red' / 'x.png')
  os.rename(root / 'test' / 'red', root / 'test' / 'amber')
  status, _, err = run_command(capsys, main.main, *argv)
  assert status == 2 and 'or other names or classes' in err, err


def test_comparisons_and_seeds_in_lockstep_refuse_a_person_as_the_oracle(tmp_path):
  from configs import label_images
  from jal import comparison, trials
  from jal.errors import JalError
  config = label_images.get_config('runlocal')
  with pytest.raises(JalError, match='a person would answer every arm'):
    comparison.run_comparison(config, str(tmp_path / 'cmp'), ['random'], [0, 1])
  with pytest.raises(JalError, match='seeds in lockstep need a simulated oracle'):
    trials.run_trials([config], [str(tmp_path / 'run')])
  assert not os.listdir(tmp_path)
