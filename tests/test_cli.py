"""Every mistake a user can make on the command line ends in one line, through jal.cli's one error
path, and leaves the work directory byte-identical: the config file, its variants and overrides
(with the nearest key), unknown flags, seeds, sizes and settings that make no sense, the work
directory, a full disk, Ctrl-C; for jal.main and jal.compare. The commands run in this process
(`jal.cli.execute`, what `python -m jal.main` runs after absl's start-up); tests/test_main.py runs
the real processes."""

from __future__ import annotations

import errno
import os

import pytest

from conftest import REPO, copy_run, snapshot
from jal import cli, compare, dirlock, experiment, main, results, workdir

DIGITS = os.path.join(REPO, 'configs', 'digits.py')
TESTS = os.path.dirname(os.path.abspath(__file__))
# The tiny protocol of conftest.run_config, on the digits config file.
TINY = ['--config.dataset.max_train=120', '--config.dataset.max_test=40',
        '--config.initial_pool.size=20', '--config.budget=10', '--config.num_rounds=3',
        '--config.model.width=4', '--config.train.epochs=1', '--config.strategy.name=random']


def run_command(capsys, program, *argv):
  """``(exit status, stderr lines)`` of ``program`` on ``argv``."""
  status = cli.execute(program, ['jal', *argv])
  err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
  return status, err


def assert_one_line(status, err, message, expected_status=2):
  assert status == expected_status, err
  assert len(err) == 1, err
  assert 'Traceback' not in err[0]
  assert err[0].startswith('jal: error: ' if expected_status == 2 else 'jal: interrupted')
  assert message in err[0], err[0]


def config_file(tmp_path, name, text):
  path = tmp_path / name
  path.write_text(text)
  return str(path)


# --------------------------------------------------------------------- jal.main


def _config_files(tmp_path):
  """User config files with one mistake each: ``{case: (--config value, message)}``."""
  (tmp_path / 'a_directory').mkdir()
  return {
      'missing': (str(tmp_path / 'nosuch.py'), 'nosuch.py: no such file'),
      'near miss': (os.path.join(REPO, 'configs', 'digit.py'),
                    "no such file; did you mean " + os.path.join(REPO, 'configs', 'digits.py')),
      'directory': (str(tmp_path / 'a_directory'), 'is a directory; give one of its config'),
      'not python': (config_file(tmp_path, 'config.yaml', 'seed: 1\n'), 'is not a Python file'),
      'syntax error': (config_file(tmp_path, 'syntax.py', 'def get_config(:\n'),
                       'syntax.py line 1: invalid syntax; fix the config file'),
      'import error': (config_file(tmp_path, 'imports.py', 'import no_such_module\n'),
                       "imports.py fails on import at line 1: ModuleNotFoundError: No module "
                       "named 'no_such_module'"),
      'no get_config': (config_file(tmp_path, 'noget.py', 'x = 1\n'),
                        'noget.py defines no get_config()'),
      'get_config raises': (config_file(tmp_path, 'raises.py',
                                        'def get_config():\n  return {}["seed"]\n'),
                            "raises.py: get_config() fails at line 2: KeyError: 'seed'"),
      'not a ConfigDict': (config_file(tmp_path, 'adict.py', 'def get_config():\n  return {}\n'),
                           'get_config() returned a dict, not an ml_collections.ConfigDict'),
      'empty': ('', '--config is empty'),
      'unknown variant': (DIGITS + ':nosuch', "unknown config variant 'nosuch'; this config "
                          'accepts runlocal'),
      'bad variant value': (DIGITS + ':runlocal=maybe',
                            "config variant runlocal='maybe' must be true or false"),
  }


CONFIG_FILE_CASES = ['missing', 'near miss', 'directory', 'not python', 'syntax error',
                     'import error', 'no get_config', 'get_config raises', 'not a ConfigDict',
                     'empty', 'unknown variant', 'bad variant value']


@pytest.mark.parametrize('case', CONFIG_FILE_CASES)
def test_config_file_mistakes(tmp_path, capsys, case):
  value, message = _config_files(tmp_path)[case]
  status, err = run_command(capsys, main.main, f'--config={value}',
                            f'--workdir={tmp_path / "run"}')
  assert_one_line(status, err, message)
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('flags, message', [
    ([], '--config is required'),
    (['--config.nosuch=1'], "the config has no key 'nosuch'"),
    (['--config.train.epoch=1'], 'did you mean --config.train.epochs?'),
    (['--config.strategy.num_mc_samples=4'],  # two strategies' sections have the key
     'did you mean --config.strategy.batchbald.num_mc_samples or '
     '--config.strategy.mc_dropout.num_mc_samples?'),
    (['--config.num_rounds=abc'], "--config.num_rounds=abc: invalid literal for int()"),
    (['--config.train=3'], "--config.train=3: Failed to parse '3'"),
    (['--workdri=x'], 'unknown flag --workdri; did you mean --workdir?'),
    (['--overwrite=maybe'], '--overwrite=maybe'),
    (['extra'], 'unexpected arguments extra; every option is a flag'),
], ids=['no config', 'unknown key', 'nested typo', 'moved key', 'wrong type', 'section value',
        'unknown flag', 'bad bool', 'positional'])
def test_flag_and_override_mistakes(tmp_path, capsys, flags, message):
  config = [f'--config={DIGITS}'] if flags != [] else []
  status, err = run_command(capsys, main.main, *config, *flags, f'--workdir={tmp_path / "run"}')
  assert_one_line(status, err, message)
  assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('overrides, message', [
    (['--config.seed=-1'], 'config.seed=-1 must be an integer from 0 to 4294967295'),
    (['--config.seed=4294967296'], 'config.seed=4294967296 must be an integer from 0'),
    (['--config.eval_batch_size=0'], 'config.eval_batch_size=0 must be at least 1'),
    (['--config.num_rounds=0'], 'config.num_rounds=0 must be at least 1'),
    (['--config.budget=-3'], 'config.budget=-3 must be positive'),
    (['--config.budget=0.4', '--config.num_rounds=4'],
     'config.initial_pool.size=20 + config.budget=48 x 3 more rounds = 164 labels, more than '
     'the 120 train examples; lower config.num_rounds to 3 or config.budget to 33'),
    (['--config.strategy.name=pal', '--config.strategy.pal.num_subqueries=0'],
     'num_subqueries=0 must be an integer from 1 to the budget of 10'),
    (['--config.strategy.name=pal', '--config.strategy.pal.num_subqueries=11'],
     'num_subqueries=11 must be an integer from 1 to the budget of 10'),
    (['--config.initial_pool.exclude_classes=(0,1,2,3,4,5,6,7,8,9)'],
     'config.initial_pool.size=20 is more than the 0 train examples outside'),
    (['--config.train.learning_rate=nan'], 'config.train.learning_rate=nan must be a number '
     'above 0'),
    (['--config.train.lr_schedule=cosin'], "config.train.lr_schedule='cosin' is unknown"),
    (['--config.strategy.pal.scoring_train.optimizer=rmsprop'],
     "config.strategy.pal.scoring_train.optimizer='rmsprop' is unknown"),
    (['--config.train.momentum=1.0'], 'config.train.momentum=1.0 must be a number at least 0 '
     'and at most 0.999'),
    (['--config.train.lr_milestones=(160,)'], 'lr_milestones=(160,) must be fractions'),
    (['--config.train.batch_size=0'], 'config.train.batch_size=0 must be at least 1'),
    (['--config.oracle.noise_rate=1.5'], 'config.oracle.noise_rate=1.5 must be in [0, 1]'),
    (['--config.candidate_subset=5'], 'candidate_subset=5 is smaller than the budget of 10'),
    (['--config.strategy.name=nope'], "unknown strategy 'nope'"),
    (['--config.dataset.name=imagenet'], 'imagenet'),
], ids=['seed<0', 'seed>=2^32', 'eval batch 0', 'rounds 0', 'budget<0', 'rounds exceed pool',
        'subqueries 0', 'subqueries>budget', 'every class excluded', 'lr nan', 'schedule typo',
        'optimizer of a scoring network', 'momentum 1', 'milestones in epochs', 'batch 0',
        'noise>1', 'subset<budget', 'strategy', 'dataset'])
def test_values_that_make_no_sense_are_refused_before_anything_is_written(tmp_path, capsys,
                                                                        overrides, message):
  status, err = run_command(capsys, main.main, f'--config={DIGITS}', *TINY, *overrides,
                            f'--workdir={tmp_path / "run"}')
  assert_one_line(status, err, message)
  assert not (tmp_path / 'run').exists()


@pytest.fixture
def tiny_config_file(tmp_path):
  """A user's config file that returns conftest.run_config: the finished run's config."""
  return config_file(tmp_path, 'tiny.py', f'import sys\nsys.path.insert(0, {TESTS!r})\n'
                     'from conftest import run_config\n\n\ndef get_config():\n'
                     '  return run_config()\n')


def _work_directories(tmp_path, finished_run):
  """Work directories jal must refuse: ``{case: (path, extra flags, message)}``."""
  (tmp_path / 'a_file').write_text('mine')
  (tmp_path / 'theirs').mkdir()
  (tmp_path / 'theirs' / 'results.jsonl').write_text('{"mine": 1}\n')
  (tmp_path / 'photos').mkdir()
  (tmp_path / 'photos' / 'cat.jpg').write_bytes(b'\xff\xd8')
  other = copy_run(finished_run, tmp_path / 'other')
  damaged_marker = copy_run(finished_run, tmp_path / 'damaged_marker')
  (damaged_marker / workdir.MARKER).write_text('{')
  damaged = copy_run(finished_run, tmp_path / 'damaged')
  with open(damaged / 'checkpoints' / '3' / 'meta' / 'metadata', 'r+b') as f:
    f.truncate(10)
  return {
      'a file': (tmp_path / 'a_file', [], 'is a file; give a directory as --workdir'),
      'their results.jsonl': (tmp_path / 'theirs', [], 'holds results.jsonl but no jal_run.json'),
      'their files, --overwrite': (tmp_path / 'photos', ['--overwrite'],
                                   'is not empty and is not a jal run (it holds cat.jpg'),
      'another config': (other, ['--config.seed=5'], 'holds a run of a different config '
                         '(differs in seed)'),
      'damaged marker': (damaged_marker, [], 'jal_run.json is damaged (JSONDecodeError)'),
      'damaged checkpoint': (damaged, [], '/checkpoints/3 is damaged (JSONDecodeError'),
  }


@pytest.mark.parametrize('case', ['a file', 'their results.jsonl', 'their files, --overwrite',
                                  'another config', 'damaged marker', 'damaged checkpoint'])
def test_work_directory_mistakes(tmp_path, capsys, finished_run, tiny_config_file, case):
  path, flags, message = _work_directories(tmp_path, finished_run)[case]
  before = snapshot(path)
  status, err = run_command(capsys, main.main, f'--config={tiny_config_file}', *flags,
                            f'--workdir={path}')
  assert_one_line(status, err, message)
  assert snapshot(path) == before


def test_a_directory_in_use(tmp_path, capsys, finished_run, tiny_config_file):
  run = copy_run(finished_run, tmp_path / 'run')
  before = snapshot(run)
  with dirlock.DirectoryLock(str(run)):
    status, err = run_command(capsys, main.main, f'--config={tiny_config_file}',
                              f'--workdir={run}')
  assert_one_line(status, err, 'is in use by another jal process (this process); wait for it')
  assert snapshot(run) == before


def test_an_unwritable_directory(tmp_path, capsys, tiny_config_file, monkeypatch):
  monkeypatch.setattr(os, 'access', lambda path, mode: False)  # root may write anywhere
  status, err = run_command(capsys, main.main, f'--config={tiny_config_file}',
                            f'--workdir={tmp_path}')
  assert_one_line(status, err, 'is not writable by you; choose another --workdir')


def test_ctrl_c_is_one_line_and_status_130(tmp_path, capsys, tiny_config_file, monkeypatch):
  def interrupted(*args, **kwargs):
    raise KeyboardInterrupt

  monkeypatch.setattr(experiment, 'run', interrupted)
  status, err = run_command(capsys, main.main, f'--config={tiny_config_file}',
                            f'--workdir={tmp_path / "run"}')
  assert_one_line(status, err, 'run the same command again to resume', expected_status=130)


def test_a_full_disk_while_rendering_names_the_file(tmp_path, capsys, finished_run,
                                                    tiny_config_file, monkeypatch):
  run = copy_run(finished_run, tmp_path / 'run')

  def no_space(records, path):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

  monkeypatch.setattr(results, 'write_jsonl', no_space)
  status, err = run_command(capsys, main.main, f'--config={tiny_config_file}',
                            f'--workdir={run}')
  assert_one_line(status, err, f'No space left on device: {run}/results.jsonl; fix that')


# ------------------------------------------------------------------- jal.compare


@pytest.mark.parametrize('flags, message', [
    (['--seeds=-1'], '--seeds=-1: seed=-1 must be an integer from 0 to 4294967295'),
    (['--seeds=0,4294967296'], 'seed=4294967296 must be an integer from 0'),
    (['--seeds=one'], '--seeds=one must be integers, e.g. --seeds=0,1,2'),
    (['--seeds=1,1'], 'must give at least one seed, each once'),
    (['--strategies=random,nope'], "unknown strategy 'nope'"),
    (['--config.strategy.pal.num_subqueries=0', '--strategies=random,pal'],
     'num_subqueries=0 must be an integer'),
], ids=['seed<0', 'seed>=2^32', 'seed not a number', 'repeated seed', 'unknown strategy',
        "one arm's bad setting"])
def test_compare_mistakes_write_nothing(tmp_path, capsys, flags, message):
  status, err = run_command(capsys, compare.main, f'--config={DIGITS}', *TINY[:-1], *flags,
                            f'--workdir={tmp_path / "comparison"}')
  assert_one_line(status, err, message)
  assert not (tmp_path / 'comparison').exists()


def test_compare_summary_of_a_damaged_results_file_names_the_line(tmp_path, capsys,
                                                                  finished_run):
  comparison = tmp_path / 'comparison'
  comparison.mkdir()
  workdir.start_comparison(str(comparison))
  run = copy_run(finished_run, comparison / 'random' / 'seed0')
  lines = (run / 'results.jsonl').read_text().splitlines(keepends=True)
  (run / 'results.jsonl').write_text(lines[0] + lines[1][:40] + '\n' + lines[2])
  status, err = run_command(capsys, compare.main, '--summary_only', '--strategies=random',
                            '--seeds=0', f'--workdir={comparison}')
  assert_one_line(status, err, f'{run}/results.jsonl line 2 is damaged (not a JSON record)')


@pytest.mark.parametrize('flags, message', [
    (['--summary_only', '--strategies=random', '--seeds=0'],
     'is not empty and is not a jal comparison (it holds notes.txt'),
    ([f'--config={DIGITS}', '--strategies=random', '--seeds=0'],
     'is not empty and is not a jal comparison'),
    (['--summary_only'], None),
], ids=['summary of a directory of files', 'comparison into a directory of files',
        'no --workdir'])
def test_compare_refuses_a_directory_that_is_not_a_comparison(tmp_path, capsys, flags, message):
  (tmp_path / 'notes.txt').write_text('mine')
  before = snapshot(tmp_path)
  workdir_flag = [f'--workdir={tmp_path}'] if message else []
  status, err = run_command(capsys, compare.main, *flags, *workdir_flag)
  assert_one_line(status, err, message or '--workdir is required')
  assert snapshot(tmp_path) == before
