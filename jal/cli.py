"""What the command lines (`jal.main`, `jal.compare`) share: their flags,
their set-up, and their one error path.

Every mistake a user can make on the command line ends in one line on
stderr, ``jal: error: <what is wrong>; <what to do>``, and exit status 2,
never a traceback: the config file (missing, a directory, not Python, a
syntax error, no ``get_config``, an unknown variant), its overrides (a key
that does not exist, with the nearest key that does; a value of the wrong
type), unknown flags, seeds and sizes (`jal.checks`), the work directory
(`jal.workdir`), a full disk. Ctrl-C stops with one line too (status 130):
every finished round is checkpointed, and the same command resumes.
`parse_flags` checks the config file and its overrides before absl parses
them; `guarded` turns what the program raises into the one line.
"""

from __future__ import annotations

import difflib
import functools
import importlib.util
import logging as std_logging
import os
import re
import sys
import traceback
from typing import Callable, NoReturn, Sequence

import ml_collections
from absl import app, flags, logging
from ml_collections import config_flags

from jal.errors import JalError

CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Experiment config file[:variants], e.g. configs/digits.py:runlocal; '
    '--config.<key>=<value> overrides a key.', lock_config=True)
WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Work directory (a new or empty directory, or a jal run to resume). '
    'jal.main: default runs/<config>[-<variant>]/<strategy>-seed<seed>; jal.compare: required.')
OVERWRITE = flags.DEFINE_bool(
    'overwrite', False, "Delete the jal run already in the work directory (jal's files only) "
    'and start again, instead of resuming it.')
RECOVER = flags.DEFINE_bool(
    'recover', False, 'When the newest checkpoint is damaged, move it to <workdir>/damaged/ and '
    'resume from the newest intact one.')

INTERRUPTED = ('jal: interrupted; every finished round is checkpointed: run the same command '
               'again to resume')


class _QuietLibraries(std_logging.Filter):
  """Drops orbax's INFO chatter (a line per checkpoint operation), and the
  tracebacks its worker threads log for an error they hand on to the caller
  (`jal.checkpoint` reports that error in one line)."""

  def filter(self, record):
    if '/orbax/' not in record.pathname:
      return True
    if record.levelno < std_logging.WARNING:
      return False
    return 'raised an exception' not in record.getMessage()


def use_compilation_cache() -> None:
  """Keeps compiled XLA programs on disk, so a resumed or repeated run starts fast.

  Under ``$JAL_CACHE_DIR/xla`` (default ``~/.cache/jal/xla``) unless the user
  set ``JAX_COMPILATION_CACHE_DIR``.
  """
  if os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    return
  import jax
  from jal.data import cache
  jax.config.update('jax_compilation_cache_dir', os.path.join(cache.default_cache_dir(), 'xla'))


def make_configs_importable(argv: Sequence[str]) -> None:
  """Lets a config file ``<root>/configs/x.py`` import ``configs.common`` from any directory.

  Config files import their shared pieces as ``from configs import common``,
  as the Flax examples do; that resolves from the repository root. For a
  ``--config`` inside a ``configs`` package, its parent goes on ``sys.path``.
  """
  value = _flag_value(argv, 'config')
  if not value:
    return
  folder = os.path.dirname(os.path.abspath(value.split(':', 1)[0]))
  if os.path.exists(os.path.join(folder, '__init__.py')):
    root = os.path.dirname(folder)
    if root not in sys.path:
      sys.path.insert(0, root)


def set_up() -> None:
  """INFO logging through absl's handler without orbax's chatter, and the
  on-disk compilation cache."""
  logging.use_absl_handler()
  logging.set_verbosity(logging.INFO)
  logging.get_absl_handler().addFilter(_QuietLibraries())
  use_compilation_cache()


# ------------------------------------------------------------ the error path ----


def fail(message: str) -> NoReturn:
  """Prints ``jal: error: <message>`` (one line) to stderr and exits with status 2."""
  print(f"jal: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  sys.exit(2)


def guarded(program: Callable[[list[str]], None]) -> Callable[[list[str]], None]:
  """``program`` with its expected failures as one line each.

  `JalError` (bad input, named) and `OSError` (a full disk, permissions,
  naming the file) exit with status 2; Ctrl-C exits with status 130 and
  says how to resume. Anything else is a bug in jal and keeps its traceback.
  """

  @functools.wraps(program)
  def run(argv):
    try:
      return program(argv)
    except JalError as e:
      fail(str(e))
    except KeyboardInterrupt:
      print(INTERRUPTED, file=sys.stderr, flush=True)
      sys.exit(130)
    except OSError as e:
      what = e.strerror or str(e) or type(e).__name__
      where = f': {e.filename}' if e.filename else ''
      fail(f'{what}{where}; fix that (free disk space, permissions), then run the same command '
           'again: every finished round is checkpointed')

  return run


def main(program: Callable[[list[str]], None]) -> None:
  """Runs ``program`` as the command line: `parse_flags`, then `guarded` ``program``."""
  make_configs_importable(sys.argv)
  app.run(guarded(program), flags_parser=parse_flags)


def execute(program: Callable[[list[str]], None], argv: Sequence[str]) -> int:
  """Runs ``program`` on ``argv`` in this process, as `main` would; returns the exit status.

  For tests and notebooks: the flags are parsed afresh (earlier values are
  reset), errors are the same single lines on stderr. ``sys.argv`` is
  ``argv`` meanwhile: ml_collections reads the config overrides from it.
  """
  argv, saved = list(argv), sys.argv
  flags.FLAGS.unparse_flags()
  for name in [n for n in flags.FLAGS if n.startswith(f'{CONFIG.name}.')]:
    delattr(flags.FLAGS, name)  # a config's overrides, defined as its flag was parsed
  sys.argv = argv
  try:
    make_configs_importable(argv)
    guarded(program)(parse_flags(argv))
  except SystemExit as e:
    return 0 if e.code is None else int(e.code)
  finally:
    sys.argv = saved
  return 0


def parse_flags(argv: Sequence[str]) -> list[str]:
  """absl's flag parsing, with the config file and its overrides checked first.

  Returns:
    The arguments left after the flags (the program name first).

  Exits:
    With `fail`'s one line for any mistake.
  """
  try:
    value = _flag_value(argv, 'config')
    if value is not None:
      check_overrides(argv, load_config(value))
    return flags.FLAGS(list(argv))
  except JalError as e:
    fail(str(e))
  except flags.Error as e:
    fail(_flags_message(e))
  except Exception as e:  # the config library's own errors on a value it cannot take
    fail(_first_line(e))


def _flag_value(argv: Sequence[str], name: str) -> str | None:
  """The value of ``--name`` (``--name=V`` or ``--name V``) in ``argv``, the last one given."""
  value = None
  for i, arg in enumerate(argv):
    if arg == '--':
      break
    if arg in (f'--{name}', f'-{name}'):
      value = argv[i + 1] if i + 1 < len(argv) else ''
    elif arg.startswith((f'--{name}=', f'-{name}=')):
      value = arg.split('=', 1)[1]
  return value


def load_config(value: str) -> ml_collections.ConfigDict:
  """Loads ``path[:variant]`` as ml_collections' config flag does, naming every failure.

  Raises:
    JalError: the file is missing (with the nearest file name), a directory,
      not a ``.py`` file, has a syntax error, fails on import, has no
      ``get_config``, or its ``get_config`` raises or returns no ConfigDict.
  """
  path, colon, variant = value.partition(':')
  flag = f'--config {value}'
  if not path:
    raise JalError('--config is empty; give a config file, e.g. --config configs/digits.py')
  if not os.path.exists(path):
    folder = os.path.dirname(path) or '.'
    names = sorted(n for n in os.listdir(folder) if n.endswith('.py')) if os.path.isdir(
        folder) else []
    near = difflib.get_close_matches(os.path.basename(path), names, n=1)
    hint = f'; did you mean {os.path.join(os.path.dirname(path), near[0])}?' if near else ''
    raise JalError(f'{flag}: no such file{hint} (the configs that come with jal are in '
                   'configs/, e.g. configs/digits.py)')
  if os.path.isdir(path):
    raise JalError(f'{flag} is a directory; give one of its config files, e.g. '
                   f'{os.path.join(path, "digits.py")}')
  if not path.endswith('.py'):
    raise JalError(f'{flag} is not a Python file; a config is a .py file whose '
                   'get_config() returns the experiment config (see configs/)')
  try:
    with open(path, encoding='utf-8') as f:
      source = f.read()
    compile(source, path, 'exec')
  except SyntaxError as e:
    raise JalError(f'{path} line {e.lineno}: {e.msg}; fix the config file') from None
  except (OSError, UnicodeDecodeError) as e:
    raise JalError(f'{flag} cannot be read ({_describe(e)})') from None
  spec = importlib.util.spec_from_file_location('jal_user_config', path)
  module = importlib.util.module_from_spec(spec)
  try:
    spec.loader.exec_module(module)
  except Exception as e:
    raise JalError(f'{path} fails on import{_where(e, path)}: {_describe(e)}') from None
  if not callable(getattr(module, 'get_config', None)):
    raise JalError(f'{path} defines no get_config(); a config file defines get_config(arg=None) '
                   'that returns an ml_collections.ConfigDict (see configs/digits.py)')
  try:
    config = module.get_config(variant) if colon else module.get_config()
  except JalError as e:
    raise JalError(f'{flag}: {e}') from None
  except Exception as e:
    call = f'get_config({variant!r})' if colon else 'get_config()'
    raise JalError(f'{path}: {call} fails{_where(e, path)}: {_describe(e)}') from None
  if not isinstance(config, ml_collections.ConfigDict):
    raise JalError(f'{path}: get_config() returned a {type(config).__name__}, not an '
                   'ml_collections.ConfigDict')
  return config


def config_keys(config: ml_collections.ConfigDict, prefix: str = '') -> list[str]:
  """Every dotted key of ``config``, sections and values."""
  out = []
  for name, value in config.items():
    key = f'{prefix}{name}'
    out.append(key)
    if isinstance(value, ml_collections.ConfigDict):
      out.extend(config_keys(value, key + '.'))
  return out


def did_you_mean(key: str, keys: Sequence[str]) -> str:
  """``'; did you mean --config.X?'`` for the key nearest ``key`` (every key of the same
  name, up to 3, when several sections have it), or ``''``."""
  last = key.rsplit('.', 1)[-1]
  same_name = [k for k in keys if k.rsplit('.', 1)[-1] == last]
  near = same_name if 1 <= len(same_name) <= 3 else difflib.get_close_matches(
      key, keys, n=1, cutoff=0.6)
  return f"; did you mean {' or '.join(f'--config.{k}' for k in near)}?" if near else ''


def check_overrides(argv: Sequence[str], config: ml_collections.ConfigDict) -> None:
  """Refuses a ``--config.<key>`` override of a key the config does not have.

  Raises:
    JalError: naming the key and the nearest key that exists.
  """
  keys = config_keys(config)
  known = set(keys)
  for arg in argv[1:]:
    if arg == '--':
      break
    match = re.fullmatch(r'--?config\.([^=]+)(=.*)?', arg, flags=re.DOTALL)
    if not match:
      continue
    key = match.group(1)
    negated = key.rsplit('.', 1)
    negated[-1] = negated[-1][2:] if negated[-1].startswith('no') else negated[-1]
    if key in known or ('.'.join(negated) in known and match.group(2) is None):
      continue
    raise JalError(f'--config.{key}: the config has no key {key!r}{did_you_mean(key, keys)}')


def _flags_message(e: Exception) -> str:
  """absl's flag error as one line, in jal's words where it helps."""
  text = _first_line(e)
  unknown = re.match(r"Unknown command line flag '([^']+)'(?:\. Did you mean: (\S+) \?)?", text)
  if unknown:
    near = f'; did you mean --{unknown.group(2)}?' if unknown.group(2) else ''
    return f'unknown flag --{unknown.group(1)}{near} (--helpshort lists the flags)'
  return text[len('flag '):] if text.startswith('flag ') else text


def _first_line(e: BaseException) -> str:
  lines = [line.strip() for line in str(e).splitlines() if line.strip()]
  return lines[0] if lines else type(e).__name__


def _describe(e: BaseException) -> str:
  return f'{type(e).__name__}: {_first_line(e)}' if str(e).strip() else type(e).__name__


def _where(e: BaseException, path: str) -> str:
  """`` at line N`` for the deepest frame of ``e`` in ``path``."""
  frames = [f for f in traceback.extract_tb(e.__traceback__)
            if os.path.abspath(f.filename) == os.path.abspath(path)]
  return f' at line {frames[-1].lineno}' if frames else ''
