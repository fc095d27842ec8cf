r"""Query time of every acquisition strategy, in units of Entropy's (SCAL paper, Table 1).

The SCAL paper (Krishnan et al. 2021, Table 1) times each strategy's query with a
ResNet-18 task model selecting 1,000 from a random 10,000-sample subset and
divides by Entropy's time: Entropy 1.0, Learning Loss 1.8, CoreSet 15.2,
BALD (50 passes) 35.7, DFM 1.38, FeatureSim 1.32, SCAL 1.37. This script
measures the same ratio for jal in one run, so the machine's noise hits every
strategy alike.

For each strategy it builds the task model the strategy trains (MC dropout,
ensemble members, the loss prediction module; freshly initialised: a query's
cost does not depend on the weights), puts ``--labeled`` labeled and
``--candidates`` candidate images (random uint8, 32x32x3, on the device) in a
pool, and times ``strategy.query(ctx, budget)``: feature extraction or the
stochastic passes, the scoring and the selection, to the returned indices.
A first query compiles every function the query uses: the full query, or for
the MC-dropout strategies (whose functions have fixed chunk shapes) one chunk;
its time beyond the steady state is reported apart as ``compile``. The
figure is the median of ``--repeats`` full queries after it (``--mc_repeats``
for the MC-dropout strategies, whose queries take minutes on a CPU).

  python experiments/query_time.py --preset=cpu   # 2 CPU cores: about 10 minutes
  python experiments/query_time.py --preset=gpu   # the paper's sizes

``--strategies=a,b`` times a subset (``entropy`` is always included, as the
unit); ``--json=FILE`` also writes the figures.
"""

from __future__ import annotations

import json
import sys

from absl import app, flags
import ml_collections

import _bench
from jal import sharding, strategies

# The strategies that query with the task model alone (PAL, VAAL, ... train
# networks of their own inside the query: their cost is training, not scoring).
DEFAULT_STRATEGIES = ('entropy', 'least_confidence', 'margin', 'learning_loss',
                      'learning_loss_v2', 'coreset', 'bald', 'dbal', 'bald_last_layer',
                      'dbal_last_layer', 'ensemble_entropy', 'ensemble_varratio',
                      'featuresim', 'scal', 'dfm', 'badge', 'batchbald', 'typiclust',
                      'probcover')
# The paper's Table 1 (Entropy units), for the strategies it times.
PAPER = {'entropy': 1.0, 'learning_loss': 1.803, 'coreset': 15.181, 'bald': 35.693,
         'dfm': 1.38, 'featuresim': 1.32, 'scal': 1.37}

PRESETS = {
    # The paper's sizes. Scoring batch 500; MC dropout 50 images x 50 passes per call.
    'gpu': dict(candidates=10_000, budget=1_000, labeled=1_000, width=64, eval_batch_size=500,
                mc_batch_size=50, repeats=3, mc_repeats=3),
    # ResNet-18 on 2 CPU cores: 50 x 500 MC passes take minutes, so 10x fewer
    # candidates and a 10x smaller query (the ratio of selected to scored is
    # the paper's; CoreSet's greedy, O(budget x candidates), shrinks 100x).
    # The MC-dropout queries (minutes each here) are timed once.
    'cpu': dict(candidates=500, budget=50, labeled=1_000, width=64, eval_batch_size=100,
                mc_batch_size=10, repeats=3, mc_repeats=1),
}

_PRESET = flags.DEFINE_enum('preset', 'cpu', list(PRESETS), 'Sizes to start from.')
_STRATEGIES = flags.DEFINE_list('strategies', list(DEFAULT_STRATEGIES), 'Strategies to time.')
_SIZES = _bench.size_flags(
    candidates='Candidates scored per query.',
    budget='Query size.',
    labeled='Labeled pool (CoreSet centers; SCAL, FeatureSim, DFM features).',
    width='ResNet-18 width (64: the standard network).',
    eval_batch_size='Scoring batch size.',
    mc_batch_size='Images per MC-dropout call.',
    repeats='Timed full queries after the compiling one.',
    mc_repeats='The same, for the MC-dropout strategies.')
_NETWORK = flags.DEFINE_enum('network', 'resnet18', ['resnet18', 'small_cnn'], 'Task network.')
_SAMPLES = flags.DEFINE_integer('num_mc_samples', 50, 'MC-dropout passes (T).')
_DTYPE = flags.DEFINE_enum('dtype', 'float32', ['float32', 'bfloat16'], 'Compute dtype.')
_JSON = flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')


def _settings() -> ml_collections.ConfigDict:
  return _bench.settings(PRESETS, _PRESET.value, _SIZES, network=_NETWORK.value,
                         num_mc_samples=_SAMPLES.value, dtype=_DTYPE.value)


def main(argv):
  del argv
  s = _settings()
  names = ['entropy'] + [n for n in _STRATEGIES.value if n != 'entropy']
  unknown = sorted(set(names) - set(strategies.available()))
  if unknown:
    sys.exit(f'query_time: error: unknown strategies {unknown}; known: '
             f'{", ".join(strategies.available())}')
  mesh = sharding.make_mesh()
  dataset, images, labels = _bench.query_pool(s, mesh)

  print(f"query time: {s['network']} width {s['width']}, {s['dtype']}, select {s['budget']} of "
        f"{s['candidates']} candidates, {s['labeled']} labeled, scoring batch "
        f"{s['eval_batch_size']}, MC dropout T = {s['num_mc_samples']} in calls of "
        f"{s['mc_batch_size']} images, median of {s['repeats']} ({s['mc_repeats']} for MC dropout)")
  print(_bench.versions(), flush=True)
  figures = {}
  for name in names:
    figures[name] = _bench.time_query(s, name, dataset, images, labels, mesh)
    unit = figures['entropy']['seconds']
    paper = f"{PAPER[name]:8.2f}" if name in PAPER else "       -"
    print(f"  {name:26s} {figures[name]['seconds']:9.3f} s  {figures[name]['seconds'] / unit:7.2f}"
          f"  (paper {paper})   compile {figures[name]['compile_seconds']:.2f} s"
          f"{_bench.memory_text(figures[name]['peak_bytes'])}", flush=True)
  if _JSON.value:
    with open(_JSON.value, 'w') as f:
      json.dump({'settings': s.to_dict(), 'hardware': _bench.hardware(), 'figures': figures}, f,
                indent=1)


if __name__ == '__main__':
  app.run(main)
