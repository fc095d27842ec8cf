r"""Checks that a change of jal's code leaves its results unchanged.

Runs a fixed set of jal commands in a checkout (``run``), and compares two
sets of runs (``compare``): the queries (every labeled index, in the order it
was labeled, and the oracle's answers, from the last checkpoint) and every
test metric of every round must be equal. Timings, the training loss and the
other training metrics may differ (an epoch's reported mean may be computed
differently); everything else in ``results.jsonl`` is compared exactly.

  # the reference, at the old commit:
  git worktree add /tmp/jal_before <commit>
  python experiments/same_results.py run --repo /tmp/jal_before --out /tmp/before
  # the change:
  python experiments/same_results.py run --repo . --out /tmp/after
  python experiments/same_results.py compare /tmp/before /tmp/after

``run`` takes the commands of `COMMANDS` (the configs an issue names) and,
with ``--all_strategies``, every strategy on the digits for three rounds.
Real data come from ``$JAL_DATA_DIR`` (``../shared/data`` here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

# (name, arguments of `python -m jal.main` after --workdir).
COMMANDS = (
    ('digits', ['--config', 'configs/digits.py']),
    ('pal_cifar10_runlocal', ['--config', 'configs/pal_cifar10.py:runlocal']),
)

# Every strategy by the name it has had since before the one-shape change;
# VAAL and TA-VAAL need images of at least 16x16.
STRATEGIES = ('random', 'entropy', 'least_confidence', 'margin', 'bald', 'dbal',
              'bald_last_layer', 'dbal_last_layer', 'coreset', 'ensemble_varratio',
              'ensemble_entropy', 'ensemble_least_confidence', 'ensemble_margin', 'learning_loss',
              'learning_loss_v2', 'pal', 'vaal', 'tavaal', 'mal', 'scal', 'featuresim', 'dfm')

# Keys that may differ between two runs of the same experiment.
IGNORED = ('train_seconds', 'query_seconds', 'train_loss', 'train_metrics', 'compile_seconds')


# Smaller auxiliary networks for the CPU, spelt in the config layout before the
# one-shape change (a flat config.strategy) and after it (one section per strategy).
SMALLER = {
    'vaal': (('strategy.vae.width=8',), ('strategy.vaal.vae.width=8',)),
    'tavaal': (('strategy.vae.width=8', 'strategy.loss_prediction_width=16'),
               ('strategy.vaal.vae.width=8', 'strategy.vaal.loss_prediction_width=16')),
    'mal': (('strategy.mal_train.epochs=15', 'strategy.mal_train.batch_size=32'),
            ('strategy.mal.train.epochs=15', 'strategy.mal.train.batch_size=32')),
}


def strategy_commands(flat_layout: bool) -> list[tuple[str, list[str]]]:
  """Every strategy on the digits (runlocal: 3 rounds), 16x16 so VAAL's VAE fits."""
  out = []
  for name in STRATEGIES:
    extra = SMALLER.get(name, ((), ()))[0 if flat_layout else 1]
    out.append((f'digits_{name}', ['--config', 'configs/digits.py:runlocal',
                                   f'--config.strategy.name={name}',
                                   '--config.dataset.image_size=16',
                                   *[f'--config.{o}' for o in extra]]))
  return out


def run(repo: str, out: str, all_strategies: bool) -> None:
  flat_layout = os.path.exists(os.path.join(repo, 'jal', 'config_util.py'))
  commands = list(COMMANDS) + (strategy_commands(flat_layout) if all_strategies else [])
  os.makedirs(out, exist_ok=True)
  for name, args in commands:
    workdir = os.path.join(os.path.abspath(out), name)
    if os.path.exists(os.path.join(workdir, 'results.jsonl')):
      print(f'{name}: already there, skipped', flush=True)
      continue
    print(f'{name}: python -m jal.main {" ".join(args)}', flush=True)
    with open(os.path.join(os.path.abspath(out), f'{name}.log'), 'w') as log:
      subprocess.run([sys.executable, '-m', 'jal.main', *args, '--workdir', workdir],
                     cwd=repo, check=True, stdout=log, stderr=subprocess.STDOUT)


def _records(workdir: str) -> list[dict]:
  with open(os.path.join(workdir, 'results.jsonl')) as f:
    return [json.loads(line) for line in f if line.strip()]


def _pool(workdir: str) -> dict[str, np.ndarray]:
  """The last checkpoint's labeled indices (in order) and oracle labels."""
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, 'checkpoints')),
                                  item_names=('pool',))
  step = manager.latest_step()
  pool = manager.restore(step, args=ocp.args.Composite(pool=ocp.args.StandardRestore()))['pool']
  manager.close()
  return {k: np.asarray(v) for k, v in pool.items()}


def compare_one(before: str, after: str) -> list[str]:
  """The differences between two runs of one command (empty: the same)."""
  problems = []
  a, b = _records(before), _records(after)
  if len(a) != len(b):
    return [f'{len(a)} rounds before, {len(b)} after']
  for ra, rb in zip(a, b):
    for key in sorted((set(ra) | set(rb)) - set(IGNORED)):
      if ra.get(key) != rb.get(key):
        problems.append(f"round {ra['round']} {key}: {ra.get(key)} before, {rb.get(key)} after")
  pa, pb = _pool(before), _pool(after)
  for key in ('labeled', 'oracle_labels'):
    if not np.array_equal(pa[key], pb[key]):
      first = int(np.argmax(pa[key] != pb[key])) if pa[key].shape == pb[key].shape else 0
      problems.append(f'pool {key} differs (shapes {pa[key].shape} / {pb[key].shape}, first at '
                      f'position {first})')
  return problems


def compare(before: str, after: str) -> int:
  names = sorted(d for d in os.listdir(before)
                 if os.path.exists(os.path.join(before, d, 'results.jsonl')))
  failed = 0
  for name in names:
    if not os.path.exists(os.path.join(after, name, 'results.jsonl')):
      print(f'{name}: missing after')
      failed += 1
      continue
    problems = compare_one(os.path.join(before, name), os.path.join(after, name))
    rounds = len(_records(os.path.join(before, name)))
    labeled = _pool(os.path.join(before, name))['labeled'].size
    if problems:
      failed += 1
      print(f'{name}: DIFFERENT')
      for p in problems[:10]:
        print(f'  {p}')
    else:
      print(f'{name}: same ({rounds} rounds, {labeled} labeled indices in order, every test '
            'metric equal)')
  print(f'{len(names) - failed} of {len(names)} runs unchanged')
  return 1 if failed else 0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  sub = parser.add_subparsers(dest='command', required=True)
  p = sub.add_parser('run', help='run the reference commands in a checkout')
  p.add_argument('--repo', default='.', help='the jal checkout to run')
  p.add_argument('--out', required=True, help='a folder for the work directories')
  p.add_argument('--all_strategies', action='store_true',
                 help='also every strategy on the digits (3 rounds each)')
  c = sub.add_parser('compare', help='compare two folders written by run')
  c.add_argument('before')
  c.add_argument('after')
  args = parser.parse_args()
  if args.command == 'run':
    run(args.repo, args.out, args.all_strategies)
    return 0
  return compare(args.before, args.after)


if __name__ == '__main__':
  sys.exit(main())
