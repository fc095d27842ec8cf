"""Results on disk: ``results.jsonl`` (one JSON object per round) and the plot."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402


def _atomic_write(path: str, write) -> None:
  tmp = f'{path}.tmp'
  write(tmp)
  os.replace(tmp, path)


def write_jsonl(records: list[dict], path: str) -> None:
  """Writes ``records`` as JSON lines, atomically (a reader never sees half a file)."""
  def write(tmp):
    with open(tmp, 'w') as f:
      for record in records:
        f.write(json.dumps(record, sort_keys=True) + '\n')
  _atomic_write(path, write)


def plot_accuracy(records: list[dict], path: str, title: str) -> None:
  """Test accuracy against the number of labels, one line per strategy, to PNG."""
  fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
  by_strategy: dict[str, list[dict]] = {}
  for record in records:
    by_strategy.setdefault(record['strategy'], []).append(record)
  for strategy, rows in by_strategy.items():
    ax.plot([r['num_labeled'] for r in rows], [100 * r['test_accuracy'] for r in rows],
            marker='o', label=strategy)
  ax.set_xlabel('number of labeled examples')
  ax.set_ylabel('test accuracy (%)')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
  plt.close(fig)
