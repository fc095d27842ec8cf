"""Results on disk: ``results.jsonl`` (one JSON object per round), the plots and TensorBoard.

Every round's record goes to ``results.jsonl``; its scalars also go through
clu's metric writers to ``<workdir>/tensorboard`` (TensorBoard's step is the
number of labeled examples), as the Flax examples write theirs. All three
are rendered from the checkpoint's records: again in full when a run starts
(`render`), so a run killed between its checkpoint and its rendering shows
every finished round once it resumes, and then after each round
(`render_round`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import matplotlib
import numpy as np

from jal import workdir as workdir_lib
from jal.errors import JalError

matplotlib.use('Agg')
import matplotlib.figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
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


# How plots and tables name a record's headline metric (`headline`).
METRIC_NAMES = {'test_accuracy': 'test accuracy', 'test_miou': 'test mIoU'}


def headline(record: dict) -> str:
  """The key of a record's headline test metric: ``record['metric']`` (segmentation:
  ``'test_miou'``), else ``'test_accuracy'``."""
  return record.get('metric', 'test_accuracy')


# The stopping signals of a record (`jal.stopping`): the panel each is drawn in, its name.
STOPPING_SIGNALS = {'stop_set_agreement': ('kappa', "Cohen's kappa with the last round"),
                    'candidate_entropy_mean': ('entropy', 'mean over the candidates'),
                    'candidate_entropy_max': ('entropy', 'max over the candidates')}


def plot_accuracy(records: list[dict], path: str, title: str) -> None:
  """The headline test metric (accuracy, or mIoU for segmentation) against the number
  of labels, one line per strategy, to PNG; below it, when the records hold them,
  the stopping signals (`plot_stopping_signals`).

  Drawn on every round: a `matplotlib.figure.Figure` with fixed margins
  (no pyplot state, no layout pass), half the time of ``tight_layout``.
  """
  signals = any(r.get(k) is not None for r in records for k in STOPPING_SIGNALS)
  fig = matplotlib.figure.Figure(figsize=(5, 7.4 if signals else 3.5), dpi=120)
  if signals:
    fig.subplots_adjust(left=0.16, right=0.97, bottom=0.07, top=0.96, hspace=0.12)
    ax, kappa_ax, entropy_ax = fig.subplots(
        3, 1, sharex=True, gridspec_kw=dict(height_ratios=[1.4, 1, 1]))
  else:
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.14, top=0.92)
    ax = fig.add_subplot()
  by_strategy: dict[str, list[dict]] = {}
  key = headline(records[0]) if records else 'test_accuracy'
  for record in records:
    if record.get(key) is not None:  # None: no test split to measure on
      by_strategy.setdefault(record['strategy'], []).append(record)
  for strategy, rows in by_strategy.items():
    ax.plot([r['num_labeled'] for r in rows], [100 * r[key] for r in rows],
            marker='o', label=strategy)
  ax.set_xlabel('number of labeled examples')
  ax.set_ylabel(f'{METRIC_NAMES.get(key, key)} (%)')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  if by_strategy:
    ax.legend()
  else:
    ax.text(0.5, 0.5, 'no test split: nothing to measure accuracy on', ha='center',
            va='center', transform=ax.transAxes)
  if signals:  # the x-axis is named once, under the lowest panel
    ax.set_xlabel('')
    plot_stopping_signals(records, kappa_ax, entropy_ax)
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))


def plot_stopping_signals(records: list[dict], kappa_ax: Any, entropy_ax: Any,
                          threshold: float = 0.99) -> None:
  """The stopping signals of ``records`` against the number of labels, on two axes;
  a strategy's colour is the one of the accuracy panel above (matplotlib's cycle).

  ``kappa_ax``: the stop-set agreement, its range zoomed to the values and
  ``threshold`` (dotted), the kappa of Bloodgood & Vijay-Shanker's (2009)
  rule: stop once the mean kappa of the last three rounds exceeds it.
  ``entropy_ax``: the candidates' mean and maximum entropy / log C, in [0, 1].
  """
  by_strategy: dict[str, list[dict]] = {}
  for record in records:
    by_strategy.setdefault(record['strategy'], []).append(record)
  low = threshold
  for i, (strategy, rows) in enumerate(by_strategy.items()):
    for signal, (panel, name) in STOPPING_SIGNALS.items():
      points = [(r['num_labeled'], r[signal]) for r in rows if r.get(signal) is not None]
      if not points:
        continue
      x, y = zip(*points)
      low = min(low, *y) if panel == 'kappa' else low
      maximum = signal.endswith('_max')
      (kappa_ax if panel == 'kappa' else entropy_ax).plot(
          x, y, color=f'C{i}', marker='^' if maximum else 'o', markersize=4,
          linestyle='--' if maximum else '-')
  # Legends of the line styles alone (grey): the colours are the strategies'.
  kappa_ax.axhline(threshold, color='0.35', linestyle=':', linewidth=1.2)
  kappa_ax.legend([Line2D([], [], color='0.35', marker='o', markersize=4),
                   Line2D([], [], color='0.35', linestyle=':')],
                  ["Cohen's kappa with the last round's predictions",
                   f'{threshold}: stop once 3 rounds average above'], fontsize=7, loc='best')
  kappa_ax.set_ylim(low - 0.15 * (1 - low) - 0.005, 1 + 0.05 * (1 - low) + 0.002)
  kappa_ax.set_ylabel('stop-set agreement')
  entropy_ax.legend([Line2D([], [], color='0.35', marker='o', markersize=4),
                     Line2D([], [], color='0.35', marker='^', markersize=4, linestyle='--')],
                    ['mean over the candidates', 'max over the candidates'], fontsize=7,
                    loc='best')
  entropy_ax.set_ylim(-0.03, 1.03)
  entropy_ax.set_ylabel('candidate entropy / log C')
  entropy_ax.set_xlabel('number of labeled examples')
  for axis in (kappa_ax, entropy_ax):
    axis.grid(alpha=0.3)


def plot_comparison(summary: dict, path: str, title: str) -> None:
  """Mean test accuracy against labels with a ±1 std band, one line per strategy, to PNG.

  ``summary`` is `jal.comparison.summarize`'s output.
  """
  fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
  for strategy, s in summary.items():
    x = s['num_labeled']
    mean = 100 * np.asarray(s['accuracy_mean'])
    std = 100 * np.asarray(s['accuracy_std'])
    line, = ax.plot(x, mean, marker='o', markersize=3,
                    label=f"{strategy} (AUC {100 * s['auc_mean']:.1f})")
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
  ax.set_xlabel('number of labeled examples')
  key = next(iter(summary.values())).get('metric', 'test_accuracy') if summary else ''
  ax.set_ylabel(f'{METRIC_NAMES.get(key, key)} (%), mean ± std')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
  plt.close(fig)


def plot_class_counts(summary: dict, path: str, title: str) -> None:
  """Grouped bars: how many examples of each true class each strategy queried (PAL's Fig. 3);
  for segmentation the pixel area of each class (PAL's Fig. 7).

  ``summary`` is `jal.comparison.summarize`'s output (``query_class_counts_mean``).
  """
  fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
  width = 0.8 / max(len(summary), 1)
  for i, (strategy, s) in enumerate(summary.items()):
    counts = np.asarray(s['query_class_counts_mean'])
    ax.bar(np.arange(counts.size) + (i - (len(summary) - 1) / 2) * width, counts, width,
           label=strategy)
  pixels = any(s.get('metric') == 'test_miou' for s in summary.values())
  names = next(iter(summary.values())).get('class_names') if summary else None
  if names:
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha='right', fontsize=7)
  ax.set_xlabel('class')
  ax.set_ylabel('queried pixels' if pixels else 'queried examples')
  ax.set_title(title, fontsize=9)
  ax.grid(alpha=0.3, axis='y')
  ax.legend(fontsize=7)
  fig.tight_layout()
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
  plt.close(fig)


def plot_excluded(summary: dict, path: str, title: str, unit: str) -> None:
  """Per query round, the examples (pixels) of the classes the biased initial pool lacked
  that each strategy queried, mean ± std over seeds (PAL's Fig. 7, right)."""
  fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
  for strategy, s in summary.items():
    if 'excluded_queried_mean' not in s:
      continue
    mean, std = np.asarray(s['excluded_queried_mean']), np.asarray(s['excluded_queried_std'])
    x = np.arange(mean.size)
    line, = ax.plot(x, mean, marker='o', markersize=3, label=strategy)
    ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xticks(x)
  ax.set_xlabel('the query of round')
  ax.set_ylabel(f'queried {unit} of the missing classes')
  ax.set_title(title, fontsize=8)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7)
  fig.tight_layout()
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png'))
  plt.close(fig)


def plot_penalty_matrix(strategies: list[str], matrix: list[list[float]],
                        column_mean: list[float], path: str, title: str,
                        vmax: float = 1.0) -> None:
  """The pairwise penalty matrix as a heatmap with its numbers, and the column
  means beneath it (Ash et al. 2020, Fig. 4), to PNG.

  Args:
    strategies: the S names, in the matrix's order.
    matrix: ``P`` ``[S, S]``: row i beat column j (`jal.significance.penalty_matrix`).
    column_mean: ``[S]``, the average penalty each strategy receives.
    path: the PNG to write.
    title: the figure's title.
    vmax: the colour scale's top: the largest possible entry (the number of settings).
  """
  matrix = np.asarray(matrix, np.float64)
  size = len(strategies)
  cell = 0.62  # inches per cell
  fig = matplotlib.figure.Figure(figsize=(cell * size + 0.6, cell * (size + 1.25)), dpi=130)
  grid = fig.add_gridspec(2, 2, height_ratios=[size, 1], width_ratios=[size, 0.22],
                          hspace=0.7 / (size + 1), wspace=0.1, left=0, right=1, bottom=0, top=1)
  ax, below = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0])
  bar = fig.add_subplot(grid[0, 1])
  cmap = matplotlib.colormaps['viridis'].with_extremes(bad='0.92')  # the diagonal: light grey
  norm = matplotlib.colors.Normalize(0.0, max(vmax, 1e-9))
  shown = matrix.copy()
  np.fill_diagonal(shown, np.nan)
  image = ax.imshow(shown, cmap=cmap, norm=norm)
  below.imshow(np.asarray(column_mean, np.float64)[None], cmap=cmap, norm=norm)

  def write(axes, row, col, value):
    color = 'black' if norm(value) > 0.6 else 'white'
    axes.text(col, row, f'{value:.2f}', ha='center', va='center', color=color, fontsize=9)

  for i in range(size):
    for j in range(size):
      if i != j:
        write(ax, i, j, matrix[i, j])
    write(below, 0, i, column_mean[i])
  labels = [s if len(s) <= 18 else s[:17] + '…' for s in strategies]
  ax.set_yticks(range(size), labels, fontsize=8)
  ax.set_ylabel('row beats column', fontsize=8)
  ax.xaxis.tick_top()
  ax.set_xticks(range(size), labels, rotation=40, ha='left', fontsize=8)
  below.set_xticks([])
  below.set_yticks([0], ['penalty\n(column mean)'], fontsize=8)
  for axes in (ax, below):
    axes.tick_params(length=0)
    for spine in axes.spines.values():
      spine.set_visible(False)
  fig.colorbar(image, cax=bar)
  bar.tick_params(labelsize=7)
  ax.set_title(title, fontsize=9, pad=12)
  _atomic_write(path, lambda tmp: fig.savefig(tmp, format='png', bbox_inches='tight',
                                              pad_inches=0.15))


def metric_writer(workdir: str) -> Any:
  """A clu metric writer to ``<workdir>/tensorboard`` (TensorBoard event files)."""
  from clu import metric_writers  # imports TensorFlow: only when a run starts
  return metric_writers.SummaryWriter(os.path.join(workdir, workdir_lib.TENSORBOARD))


def render(workdir: str, records: list[dict], title: str) -> Any:
  """Renders everything derived from ``records`` anew: ``results.jsonl``, the
  plot and the TensorBoard events (older event files are deleted first).

  Returns:
    The TensorBoard writer, for `render_round`.
  """
  board = os.path.join(workdir, workdir_lib.TENSORBOARD)
  if os.path.isdir(board):
    for name in os.listdir(board):
      if name.startswith('events.out.tfevents.'):
        os.remove(os.path.join(board, name))
  write_jsonl(records, os.path.join(workdir, workdir_lib.RESULTS))
  if records:
    plot_accuracy(records, os.path.join(workdir, workdir_lib.PLOT), title)
  writer = metric_writer(workdir)
  for record in records:
    write_scalars(writer, record)
  return writer


def render_round(workdir: str, records: list[dict], writer: Any, title: str) -> None:
  """After a round: ``results.jsonl`` and the plot of ``records``, and the
  TensorBoard scalars of the last record."""
  write_jsonl(records, os.path.join(workdir, workdir_lib.RESULTS))
  plot_accuracy(records, os.path.join(workdir, workdir_lib.PLOT), title)
  write_scalars(writer, records[-1])


def read_jsonl(path: str) -> list[dict]:
  """The records of a ``results.jsonl``.

  Raises:
    JalError: a line is not a JSON object, naming the file and the line.
  """
  out = []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        record = json.loads(line)
      except ValueError:
        record = None
      if not isinstance(record, dict):
        raise JalError(f'{path} line {number} is damaged (not a JSON record); run the same '
                       'jal command without --summary_only to render it again from the '
                       'checkpoints')
      out.append(record)
  return out


def scalars(record: dict) -> dict[str, float]:
  """The numbers of a round's record, flat: the metrics, the timings and the
  training and query metrics (``train/<name>``, ``query/<name>``)."""
  out = {}
  for key, value in record.items():
    if key in ('round', 'num_labeled', 'seed', 'query_size'):
      continue
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      out[key] = float(value)
  for prefix in ('train_metrics', 'query_metrics'):
    for key, value in record.get(prefix, {}).items():
      out[f"{prefix.split('_')[0]}/{key}"] = float(value)
  return out


def write_scalars(writer: Any, record: dict) -> None:
  """Writes `scalars` of ``record`` at step ``num_labeled`` and flushes."""
  writer.write_scalars(int(record['num_labeled']), scalars(record))
  writer.flush()
