r"""jal's accelerator goals, measured in one command (issue 18, point 1).

jal exists to make active learning fast on accelerators; this script measures
the goals on one GPU (an H200) in one run of a few minutes, each row against
its goal, with compile time apart from the steady state and the row's peak
device memory:

  row              what is timed                                      goal (one H200)
  jal_train        ResNet-18 (CIFAR) training, bf16, jal's `fit`       >= 100,000 images/s
  jal_inference    ResNet-18 eval-mode logits over a pool              >= 350,000 images/s
  pal_score        PAL's scoring pass, 4 rotations x 73,257 images     <= 1.5 s
  coreset          k-center greedy, 10^6 x 512 features, 10^4 picks    <= 10 s (bound ~4.3 s)
  bald             BALD query, 50 MC-dropout passes, 10^5 candidates   <= 20 s
  pal_round        one PAL round at SVHN scale (22,000 labeled, VGG-16
                   task model, ResNet-18 scorer: configs/pal_svhn.py),
                   run at a few epochs, extrapolated to its 100        <= 60 s
  torch_train      the same training in PyTorch, bf16 autocast,
                   ``torch.compile`` (experiments/torch_reference)     (ratio jal / torch)
  torch_inference  the same inference in PyTorch                       (ratio)
  badge            BADGE query, 10^5 candidates, if this checkout
                   has ``jal/acquisition/badge.py``                    (time)
  batchbald        BatchBALD query, 10^5 candidates, if it has
                   ``jal/acquisition/batchbald.py``                    (time)
  torch_pal_score  PAL's scoring pass in PyTorch                       (ratio)

The work is that of `experiments/benchmark.py` (`JalBench`, `TorchBench`,
`pal_round_call`), `experiments/_bench.py` (`time_query`) and
`experiments/coreset_greedy.py` (`time_greedy`), on random data of the real
shapes (uint8 32x32x3 images; no dataset is read, so nothing here imports
TensorFlow).

**Each row in its own process** (``--isolation=process``, the default): the
peak device memory of a row is its own (JAX cannot reset its allocator's
peak within a process: ``memory_stats()['peak_bytes_in_use']`` only grows),
PyTorch and JAX never share a process's device memory (JAX takes 75% of the
GPU when it starts; the PyTorch rows run with ``JAX_PLATFORMS=cpu``), a row
that crashes or hangs past its time limit is killed and recorded, and the
next row still runs. ``--isolation=inline`` runs the rows in this process
(the smoke test); its JAX peaks are then the process's so far. PyTorch's peak
is `torch.cuda.max_memory_allocated` after `torch.cuda.reset_peak_memory_stats`.

**Output**: ``OUT/device_check.json``, rewritten after every row (a run cut
short keeps what finished), and ``OUT/device_check.log``, everything the
rows printed; OUT is ``--out``, else ``$OUT``, else ``runs/device_check``.
Rows run in the order above within ``--budget_s`` seconds (each also within
its own limit); a row that no longer fits is recorded as skipped, and
``--rows=a,b`` runs it in a later command.

  python experiments/device_check.py                 # on the GPU: about 8 minutes
  python experiments/device_check.py --smoke         # the same paths, tiny, on the CPU

``--smoke`` runs every row at tiny sizes (float32 small CNNs of width 4, tens
of images, a PAL round of one sub-query) on whatever JAX finds, judges no
goal, and runs PyTorch eager (``torch.compile`` needs a C++ toolchain and
minutes on a CPU); PyTorch rows are skipped where torch is not installed.
Its cost is compilation: about 20 CPU-seconds here. BENCHMARKS.md ("Device
check (H200)") gives the exact command for the lent machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.util
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from typing import Any, Callable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENTS = os.path.join(REPO, 'experiments')
# This checkout's jal (and configs/), not an installed one; the sibling scripts.
for _path in (EXPERIMENTS, REPO):
  if _path not in sys.path:
    sys.path.insert(0, _path)

JSON_NAME = 'device_check.json'
LOG_NAME = 'device_check.log'
# The epochs of the PAL round's protocol (configs/pal_svhn.py), the target of the extrapolation.
PROTOCOL_EPOCHS = 100

# Sizes. 'gpu': the goals' sizes. 'smoke': every code path in seconds on a CPU.
PRESETS = {
    'gpu': dict(
        dtype='bfloat16', network='resnet18', width=64,
        # Training: batch 512 x 100 steps per timed epoch; inference and PAL
        # scoring over SVHN's 73,257 training images.
        batch_size=512, train_steps=100, eval_batch_size=4096, pool_size=73_257, repeats=3,
        # The PAL round: SVHN's last round of configs/pal_svhn.py (30% of
        # 73,257 labeled, +5% queried), its networks and batch 64; timed at
        # round_epochs[0] and [1] epochs, extrapolated to PROTOCOL_EPOCHS.
        round_labeled=22_000, round_unlabeled=51_257, round_budget=3_663,
        round_epochs=(1, 3), task_network='vgg16', scoring_network='resnet18',
        round_width=None, round_subqueries=None, round_finetune_epochs=None,  # None: pal_svhn's
        # Queries: BALD (and BADGE, BatchBALD) over 100,000 candidates.
        candidates=100_000, labeled=1_000, budget=1_000, batchbald_budget=100,
        num_mc_samples=50, mc_batch_size=500, mc_repeats=1,
        # CoreSet: 10^6 x 512 features, 1,000 labeled centers, 10,000 picks.
        coreset_n=1_000_000, coreset_d=512, coreset_m=1_000, coreset_k=10_000,
        coreset_repeats=2, torch_mode='compile'),
    'smoke': dict(
        dtype='float32', network='small_cnn', width=4,
        batch_size=8, train_steps=2, eval_batch_size=16, pool_size=40, repeats=1,
        round_labeled=16, round_unlabeled=24, round_budget=6, round_epochs=(1, 2),
        task_network='small_cnn', scoring_network='small_cnn', round_width=4,
        round_subqueries=1, round_finetune_epochs=1,
        candidates=40, labeled=16, budget=5, batchbald_budget=3, num_mc_samples=3,
        mc_batch_size=8, mc_repeats=1,
        coreset_n=300, coreset_d=8, coreset_m=10, coreset_k=20, coreset_repeats=1,
        torch_mode='eager'),
}
# H200 memory bandwidth (vendor datasheet, bytes/s): CoreSet's greedy reads
# the n x d float32 points once per pick, so k n d 4 / bandwidth bounds it.
HBM_BYTES_PER_S = 4.8e12


class Skip(Exception):
  """A row that does not apply here (its module is not in this checkout, no torch)."""


@dataclasses.dataclass(frozen=True)
class Goal:
  """``value op target`` in ``unit``; ``op`` is ``'>='`` or ``'<='``."""
  op: str
  target: float
  unit: str

  def passed(self, value: float) -> bool:
    return value >= self.target if self.op == '>=' else value <= self.target

  def text(self) -> str:
    return f'{self.op} {self.target:,g} {self.unit}'


@dataclasses.dataclass(frozen=True)
class Row:
  """A measurement: ``run(sizes)`` returns its fields; at most ``limit_s`` seconds on the GPU.

  ``versus``: the jal row a PyTorch row is compared with (``ratio_jal_over_torch``).
  """
  name: str
  run: Callable[[Any], dict]
  description: str
  goal: Goal | None = None
  limit_s: float = 120.0
  versus: str | None = None


# --------------------------------------------------------------------------- rows ---


def _settings(sizes):
  import ml_collections  # pylint: disable=g-import-not-at-top
  return ml_collections.ConfigDict(dict(sizes))


def _jal_bench(sizes, n: int):
  import _bench  # pylint: disable=g-import-not-at-top
  import benchmark  # pylint: disable=g-import-not-at-top
  return benchmark.JalBench(_settings(sizes), _bench.synthetic_dataset(n))


def _figure_fields(fig, unit: str) -> dict:
  """A `benchmark.Figure` as row fields: images/s, or seconds for ``unit == 's'``."""
  value = fig.seconds if unit == 's' else fig.per_second
  return dict(value=value, unit=unit, seconds=fig.seconds, compile_seconds=fig.compile_seconds,
              peak_device_bytes=fig.peak_bytes, details={'images_per_call': fig.items})


def row_jal_train(sizes) -> dict:
  n = sizes['batch_size'] * sizes['train_steps']
  fig = _jal_bench(sizes, n).train()
  out = _figure_fields(fig, 'images/s')
  out['details'].update(batch_size=sizes['batch_size'], steps=sizes['train_steps'])
  return out


def row_jal_inference(sizes) -> dict:
  fig = _jal_bench(sizes, sizes['pool_size']).inference()
  out = _figure_fields(fig, 'images/s')
  out['details'].update(batch_size=sizes['eval_batch_size'])
  return out


def row_pal_score(sizes) -> dict:
  fig = _jal_bench(sizes, sizes['pool_size']).pal_score()
  out = _figure_fields(fig, 's')
  out['details'].update(batch_size=sizes['eval_batch_size'], rotations=4,
                        forward_images_per_s=4 * fig.per_second)
  return out


def row_coreset(sizes) -> dict:
  import coreset_greedy  # pylint: disable=g-import-not-at-top
  n, d, m, k = (sizes[f'coreset_{x}'] for x in 'ndmk')
  r = coreset_greedy.time_greedy(n, m, d, k, repeats=sizes['coreset_repeats'])
  bound = k * n * d * 4 / HBM_BYTES_PER_S
  return dict(value=r['seconds'], unit='s', seconds=r['seconds'],
              compile_seconds=r['compile_seconds'], peak_device_bytes=r['peak_bytes'],
              details=dict(n=n, d=d, m=m, k=k, all_seconds=r['all_seconds'],
                           temp_bytes=r['temp_bytes'],
                           bandwidth_bound_seconds=bound,
                           bandwidth_bound_note=f'{k} passes over {n} x {d} float32 at '
                                                f'{HBM_BYTES_PER_S / 1e12:.1f} TB/s'))


def _query_row(sizes, name: str, budget: int) -> dict:
  """`_bench.time_query` of strategy ``name`` over ``sizes['candidates']`` candidates."""
  import _bench  # pylint: disable=g-import-not-at-top
  from jal import sharding, strategies  # pylint: disable=g-import-not-at-top
  if name not in strategies.available():
    raise RuntimeError(f'jal/acquisition/{name}.py is here but no strategy {name!r} is '
                       f'registered (known: {", ".join(strategies.available())})')
  s = dict(sizes, budget=budget)
  mesh = sharding.make_mesh()
  dataset, images, labels = _bench.query_pool(s, mesh)
  r = _bench.time_query(s, name, dataset, images, labels, mesh)
  return dict(value=r['seconds'], unit='s', seconds=r['seconds'],
              compile_seconds=r['compile_seconds'], peak_device_bytes=r['peak_bytes'],
              details=dict(candidates=s['candidates'], labeled=s['labeled'], budget=budget,
                           num_mc_samples=s['num_mc_samples'], mc_batch_size=s['mc_batch_size'],
                           all_seconds=r['all_seconds']))


def row_bald(sizes) -> dict:
  return _query_row(sizes, 'bald', sizes['budget'])


def _if_in_checkout(name: str) -> None:
  """Skips a row whose acquisition module this checkout does not have."""
  if importlib.util.find_spec(f'jal.acquisition.{name}') is None:
    raise Skip(f'not in this checkout (no jal/acquisition/{name}.py)')


def row_badge(sizes) -> dict:
  _if_in_checkout('badge')
  return _query_row(sizes, 'badge', sizes['budget'])


def row_batchbald(sizes) -> dict:
  _if_in_checkout('batchbald')
  return _query_row(sizes, 'batchbald', sizes['batchbald_budget'])


def row_pal_round(sizes) -> dict:
  """One PAL round of configs/pal_svhn.py at two epoch counts, extrapolated to 100.

  The task model and the scoring network train for E epochs each (the
  sub-queries' fine-tuning keeps the protocol's 5); with ``t(E)`` the
  steady-state round time, the round at 100 epochs is
  ``t(a) + (100 - a) (t(b) - t(a)) / (b - a)``.
  """
  import _bench  # pylint: disable=g-import-not-at-top
  import benchmark  # pylint: disable=g-import-not-at-top
  s = _settings(sizes)
  config = _bench.protocol('pal_svhn')
  protocol_epochs = (config.train.epochs, config.strategy.pal.scoring_train.epochs)
  config.model.update(name=s.task_network, width=s.round_width, dtype=s.dtype)
  pal = config.strategy.pal
  pal.scoring_model.update(name=s.scoring_network, width=s.round_width, dtype=s.dtype)
  if s.round_subqueries is not None:
    pal.num_subqueries = s.round_subqueries
  if s.round_finetune_epochs is not None:
    pal.finetune.epochs = s.round_finetune_epochs
  config.eval_batch_size = s.eval_batch_size
  n = s.round_labeled + s.round_unlabeled
  bench = benchmark.JalBench(s, dataclasses.replace(_bench.synthetic_dataset(n),
                                                    flip=False))  # digits: no flips
  strategy, run = benchmark.pal_round_call(config, bench.dataset, bench.images, bench.mesh,
                                           s.round_labeled, s.round_unlabeled, s.round_budget)

  def timed(epochs: int) -> float:
    config.train.epochs = epochs  # read by the task model's fit
    strategy.settings.scoring_train.epochs = epochs  # PAL's copy of config.strategy.pal
    start = time.perf_counter()
    run()
    return time.perf_counter() - start

  a, b = s.round_epochs
  first = timed(a)
  t_a, t_b = timed(a), timed(b)
  per_epoch = (t_b - t_a) / (b - a)
  extrapolated = t_a + (PROTOCOL_EPOCHS - a) * per_epoch
  return dict(value=extrapolated, unit='s', seconds=extrapolated,
              compile_seconds=max(0.0, first - t_a), peak_device_bytes=_bench.peak_device_bytes(),
              details=dict(labeled=s.round_labeled, unlabeled=s.round_unlabeled,
                           budget=s.round_budget, task_network=s.task_network,
                           scoring_network=s.scoring_network, batch_size=config.train.batch_size,
                           protocol_epochs=list(protocol_epochs),
                           num_subqueries=strategy.settings.num_subqueries,
                           finetune_epochs=strategy.settings.finetune.epochs,
                           epochs_timed=[a, b], seconds_timed=[t_a, t_b],
                           seconds_per_epoch=per_epoch,
                           extrapolation=f't({a}) + ({PROTOCOL_EPOCHS} - {a}) x '
                                         f'(t({b}) - t({a})) / {b - a}'))


def _torch_bench(sizes, n: int):
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise Skip('torch is not installed') from None
  if not sizes['smoke'] and not torch.cuda.is_available():
    raise RuntimeError(f'torch {torch.__version__} sees no CUDA device')
  import _bench  # pylint: disable=g-import-not-at-top
  import benchmark  # pylint: disable=g-import-not-at-top
  return benchmark.TorchBench(_settings(sizes), _bench.synthetic_dataset(n), sizes['torch_mode'])


def _torch_fields(fig, unit: str, sizes) -> dict:
  out = _figure_fields(fig, unit)
  out['details']['mode'] = sizes['torch_mode']
  return out


def row_torch_train(sizes) -> dict:
  bench = _torch_bench(sizes, sizes['batch_size'] * sizes['train_steps'])
  return _torch_fields(bench.train(), 'images/s', sizes)


def row_torch_inference(sizes) -> dict:
  return _torch_fields(_torch_bench(sizes, sizes['pool_size']).inference(), 'images/s', sizes)


def row_torch_pal_score(sizes) -> dict:
  return _torch_fields(_torch_bench(sizes, sizes['pool_size']).pal_score(), 's', sizes)


ROWS = (
    Row('jal_train', row_jal_train, 'ResNet-18 CIFAR training, jal fit, bf16',
        Goal('>=', 100_000, 'images/s'), 120),
    Row('jal_inference', row_jal_inference, 'ResNet-18 eval-mode logits, jal predict',
        Goal('>=', 350_000, 'images/s'), 60),
    Row('pal_score', row_pal_score, "PAL's scoring pass, 4 rotations x the pool",
        Goal('<=', 1.5, 's'), 60),
    Row('coreset', row_coreset, 'CoreSet k-center greedy on random features',
        Goal('<=', 10, 's'), 90),
    Row('bald', row_bald, 'BALD query, full-network MC dropout',
        Goal('<=', 20, 's'), 100),
    Row('pal_round', row_pal_round, 'one PAL round, configs/pal_svhn.py networks, '
        'extrapolated to 100 epochs', Goal('<=', 60, 's'), 200),
    Row('torch_train', row_torch_train, 'ResNet-18 training, PyTorch reference, bf16 autocast',
        None, 150, versus='jal_train'),
    Row('torch_inference', row_torch_inference, 'ResNet-18 inference, PyTorch reference',
        None, 90, versus='jal_inference'),
    Row('badge', row_badge, 'BADGE query (k-means++ on gradient embeddings)', None, 80),
    Row('batchbald', row_batchbald, 'BatchBALD query', None, 100),
    Row('torch_pal_score', row_torch_pal_score, "PAL's scoring pass, PyTorch reference",
        None, 90, versus='pal_score'),
)
ROWS_BY_NAME = {row.name: row for row in ROWS}


# ---------------------------------------------------------------- one row, measured ---


def _environment(torch_row: bool) -> dict:
  """The libraries and the device the row ran on."""
  env = {'python': platform.python_version(), 'host_cpus': os.cpu_count()}
  if torch_row:
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError:
      return env
    env['torch'] = torch.__version__
    if torch.cuda.is_available():
      env['torch_device'] = torch.cuda.get_device_name(0)
    return env
  import flax  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  device = jax.devices()[0]
  env.update(jax=jax.__version__, flax=flax.__version__, jax_backend=jax.default_backend(),
             device=device.device_kind, device_count=jax.device_count())
  return env


def measure_row(row: Row, sizes: dict) -> dict:
  """Runs one row here and returns its record (never raises, but on Ctrl-C)."""
  start = time.perf_counter()
  record = {'name': row.name, 'description': row.description}
  try:
    torch_row = row.name.startswith('torch_')
    record['environment'] = _environment(torch_row)
    if (not sizes['smoke'] and not torch_row
        and record['environment']['jax_backend'] not in ('gpu', 'cuda', 'rocm', 'tpu')):
      raise RuntimeError(f"JAX runs on {record['environment']['jax_backend']}, not an "
                         'accelerator (pass --smoke to check the code paths on a CPU)')
    record.update(row.run(sizes))
    record['status'] = 'ok'
  except Skip as e:
    record.update(status='skipped', reason=str(e))
  except Exception as e:  # pylint: disable=broad-except
    record.update(status='error', error=f'{type(e).__name__}: {e}',
                  traceback=traceback.format_exc()[-4000:])
    traceback.print_exc()
  record['row_seconds'] = time.perf_counter() - start
  return record


# --------------------------------------------------------------------- the driver ---


class Log:
  """Lines to stdout and to the log file, as they come."""

  def __init__(self, path: str):
    self.file = open(path, 'a', encoding='utf-8')
    self.lock = threading.Lock()

  def write(self, text: str) -> None:
    with self.lock:
      sys.stdout.write(text)
      sys.stdout.flush()
      self.file.write(text)
      self.file.flush()

  def line(self, text: str = '') -> None:
    self.write(text + '\n')


def _run_in_process(row: Row, args, limit_s: float, log: Log) -> dict:
  """The row in a child process (this script with ``--row``), killed after ``limit_s``."""
  with tempfile.TemporaryDirectory(prefix='device_check_') as tmp:
    result_path = os.path.join(tmp, 'row.json')
    command = [sys.executable, '-u', os.path.abspath(__file__), '--row', row.name,
               '--row_result', result_path] + (['--smoke'] if args.smoke else [])
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env.setdefault('TQDM_DISABLE', '1')  # no progress bars in the log
    if row.name.startswith('torch_') and not args.smoke:
      env['JAX_PLATFORMS'] = 'cpu'  # JAX must not take the GPU's memory from PyTorch
    start = time.perf_counter()
    # Its own process group, to kill what it started too (PyTorch's compile
    # workers), but not its own session: whatever ends this command ends it.
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=env, process_group=0)

    def copy_output():
      for line in child.stdout:
        log.write(f'    | {line}')
    reader = threading.Thread(target=copy_output, daemon=True)
    reader.start()
    try:
      child.wait(timeout=limit_s)
      timed_out = False
    except subprocess.TimeoutExpired:
      os.killpg(child.pid, signal.SIGKILL)  # the row and what it started (compile workers)
      child.wait()
      timed_out = True
    reader.join(timeout=10)
    seconds = time.perf_counter() - start
    if os.path.exists(result_path):
      with open(result_path, encoding='utf-8') as f:
        record = json.load(f)
    else:
      record = {'name': row.name, 'description': row.description}
      if timed_out:
        record.update(status='timeout', error=f'killed after its limit of {limit_s:.0f} s')
      else:
        record.update(status='error', error=f'the row process exited with code '
                                            f'{child.returncode} and no result (see the log)')
    record['process_seconds'] = seconds
    return record


def _judge(record: dict, row: Row, records: dict, smoke: bool) -> None:
  """Adds the goal, pass/fail and, for a PyTorch row, the ratio jal / PyTorch."""
  if row.goal is not None:
    record['goal'] = dataclasses.asdict(row.goal)
    if record.get('status') == 'ok':
      record['passed'] = None if smoke else row.goal.passed(record['value'])
  jal = records.get(row.versus) if row.versus else None
  if jal and jal.get('status') == 'ok' and record.get('status') == 'ok':
    # Above 1: jal is faster (more images/s, or fewer seconds).
    record['ratio_jal_over_torch'] = (jal['value'] / record['value'] if record['unit'] != 's'
                                      else record['value'] / jal['value'])
    record['versus'] = row.versus


def _format(record: dict) -> str:
  status = record.get('status', '?')
  if status != 'ok':
    return f"{status}: {record.get('reason') or record.get('error', '')}"
  unit = record['unit']
  value = f"{record['value']:,.0f} {unit}" if unit != 's' else f"{record['value']:.3f} s"
  parts = [value]
  if 'goal' in record:
    verdict = {True: 'PASS', False: 'FAIL', None: 'not judged'}[record.get('passed')]
    parts.append(f"goal {Goal(**record['goal']).text()}: {verdict}")
  if 'ratio_jal_over_torch' in record:
    parts.append(f"jal / torch {record['ratio_jal_over_torch']:.2f}x")
  parts.append(f"compile {record['compile_seconds']:.1f} s")
  peak = record.get('peak_device_bytes')
  parts.append('peak memory ' + (f'{peak / 1e9:.2f} GB' if peak is not None else 'n/a'))
  return ', '.join(parts)


def _table_row(record: dict) -> str:
  """The record as a Markdown table row: row, result, goal, pass, compile s, peak memory."""
  goal = Goal(**record['goal']).text() if 'goal' in record else ''
  if record.get('status') != 'ok':
    return f"| {record['name']} | {record.get('status')} | {goal} | | | |"
  unit = record['unit']
  result = f"{record['value']:,.0f} {unit}" if unit != 's' else f"{record['value']:.3f} s"
  if 'ratio_jal_over_torch' in record:
    result += f" (jal / torch {record['ratio_jal_over_torch']:.2f}x)"
  verdict = {True: 'yes', False: 'no', None: '-'}[record.get('passed')]
  peak = record.get('peak_device_bytes')
  memory = f'{peak / 1e9:.2f} GB' if peak is not None else 'n/a'
  return (f"| {record['name']} | {result} | {goal} | {verdict} | "
          f"{record['compile_seconds']:.1f} | {memory} |")


def _write_json(path: str, report: dict) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w', encoding='utf-8') as f:
    # NumPy scalars as numbers; anything else unforeseen as text, not a lost report.
    json.dump(report, f, indent=1,
              default=lambda o: o.item() if hasattr(o, 'item') else str(o))
  os.replace(tmp, path)


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--out', default=None,
                      help='Folder of device_check.json and .log (default $OUT, else '
                           'runs/device_check).')
  parser.add_argument('--smoke', action='store_true',
                      help='Tiny sizes on any backend; no goal is judged.')
  parser.add_argument('--rows', default=','.join(r.name for r in ROWS),
                      help='Comma-separated rows, run in the order of ROWS.')
  parser.add_argument('--isolation', choices=('process', 'inline'), default='process',
                      help='Each row in its own process (default), or all in this one.')
  parser.add_argument('--budget_s', type=float, default=450.0,
                      help='Seconds for all rows; a row that no longer fits is skipped.')
  parser.add_argument('--row', help=argparse.SUPPRESS)  # a child: run this row only
  parser.add_argument('--row_result', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  unknown = [r for r in args.rows.split(',') if r and r not in ROWS_BY_NAME]
  if unknown:
    parser.error(f'unknown rows {unknown}; known: {", ".join(ROWS_BY_NAME)}')
  return args


def _sizes(args) -> dict:
  return dict(PRESETS['smoke' if args.smoke else 'gpu'], smoke=args.smoke)


def main(argv: list[str] | None = None) -> dict | None:
  """Runs the check; returns the report (None for a ``--row`` child)."""
  args = _parse(argv)
  if args.row:  # a child process: one row, its record to --row_result
    record = measure_row(ROWS_BY_NAME[args.row], _sizes(args))
    _write_json(args.row_result, record)
    return None

  out = args.out or os.environ.get('OUT') or os.path.join(REPO, 'runs', 'device_check')
  os.makedirs(out, exist_ok=True)
  json_path = os.path.join(out, JSON_NAME)
  log = Log(os.path.join(out, LOG_NAME))
  sizes = _sizes(args)
  wanted = set(args.rows.split(','))
  rows = [row for row in ROWS if row.name in wanted]
  report = {'command': ' '.join([os.path.relpath(__file__, REPO)] + list(
                sys.argv[1:] if argv is None else argv)),
            'started': datetime.datetime.now().isoformat(timespec='seconds'),
            'smoke': args.smoke, 'isolation': args.isolation, 'budget_s': args.budget_s,
            'sizes': sizes, 'environment': None, 'rows': [], 'finished': False}
  log.line(f"device check{' (smoke)' if args.smoke else ''}: {len(rows)} rows, "
           f'{args.isolation} isolation, budget {args.budget_s:.0f} s -> {json_path}')
  _write_json(json_path, report)
  records: dict[str, dict] = {}
  start = time.perf_counter()
  for i, row in enumerate(rows):
    left = args.budget_s - (time.perf_counter() - start)
    limit = min(row.limit_s, left) if not args.smoke else left
    log.line(f'[{i + 1}/{len(rows)}] {row.name}: {row.description} (limit {limit:.0f} s)')
    if limit < 15:
      record = {'name': row.name, 'description': row.description, 'status': 'skipped',
                'reason': f'out of time ({left:.0f} s of --budget_s left); run it with '
                          f'--rows={row.name}'}
    elif args.isolation == 'process':
      record = _run_in_process(row, args, limit, log)
    else:
      record = measure_row(row, sizes)
    _judge(record, row, records, args.smoke)
    records[row.name] = record
    report['rows'].append(record)
    if report['environment'] is None and record.get('environment', {}).get('jax'):
      report['environment'] = record['environment']
    report['elapsed_s'] = time.perf_counter() - start
    _write_json(json_path, report)
    log.line(f'    -> {row.name}: {_format(record)}')
  report['finished'] = True
  _write_json(json_path, report)
  log.line()
  log.line('| row | result | goal | pass | compile s | peak device memory |')
  log.line('| --- | --- | --- | --- | --- | --- |')
  for record in report['rows']:
    log.line(_table_row(record))
  log.line(f"environment: {report['environment']}; "
           f'{time.perf_counter() - start:.0f} s in all')
  log.file.close()
  return report


if __name__ == '__main__':
  main()
