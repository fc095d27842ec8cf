"""The work directory: one run's config, checkpoints, results and plot.

A work directory belongs to one config. Starting a run on a directory that
holds a run of a different config is refused (naming the keys that differ)
unless the user asks to overwrite, so finished results are never mixed or
lost by accident.
"""

from __future__ import annotations

import json
import os
import shutil

import ml_collections

from jal.errors import JalError

CONFIG_FILE = 'config.json'
RESULTS = 'results.jsonl'
PLOT = 'accuracy.png'
CHECKPOINTS = 'checkpoints'
TENSORBOARD = 'tensorboard'
# Files a run writes; --overwrite removes exactly these.
RUN_FILES = (CONFIG_FILE, RESULTS, PLOT, CHECKPOINTS, TENSORBOARD)


def _flatten(d: dict, prefix: str = '') -> dict:
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(_flatten(v, key + '.'))
    else:
      out[key] = v
  return out


def config_to_dict(config: ml_collections.ConfigDict) -> dict:
  """The config as plain JSON data (tuples become lists)."""
  return json.loads(config.to_json_best_effort(sort_keys=True))


def prepare(workdir: str, config: ml_collections.ConfigDict, overwrite: bool) -> None:
  """Creates ``workdir`` for ``config``, or checks it holds a run of the same config.

  Raises:
    JalError: if ``workdir`` holds a run of another config and not ``overwrite``,
      or is a file.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise JalError(f'--workdir {workdir} is a file; give a directory')
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, CONFIG_FILE)
  current = config_to_dict(config)
  if overwrite:
    for name in RUN_FILES:
      target = os.path.join(workdir, name)
      if os.path.isdir(target):
        shutil.rmtree(target)
      elif os.path.exists(target):
        os.remove(target)
  elif os.path.exists(path):
    with open(path) as f:
      stored = json.load(f)
    if stored != current:
      a, b = _flatten(stored), _flatten(current)
      diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
      raise JalError(f'{workdir} holds a run of a different config (differs in '
                     f"{', '.join(diff[:6])}{', ...' if len(diff) > 6 else ''}); choose "
                     'another --workdir, or pass --overwrite to delete that run')
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(current, f, indent=2, sort_keys=True)
  os.replace(tmp, path)
