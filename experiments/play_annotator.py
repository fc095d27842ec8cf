r"""Plays the annotator of a human-oracle run from known true labels.

  python experiments/play_annotator.py --query DIR/queries/round_<r> \
      --truth truth.csv --out answers.csv [--format query|answers] [--limit N]

Reads the query's ``query.csv`` and answers each row with the label in
``--truth`` (a ``path,label`` CSV, paths relative to the labeling project),
writing either the filled ``query.csv`` (``--format query``, what a person
filling it in would save) or a plain ``path,label`` CSV (``--format answers``,
the input of experiments/label_studio_roundtrip.py and
experiments/cvat_imagenet_export.py). ``--limit`` answers only the first N
rows (a partial answer). For walk-throughs and tests of the round trip
(experiments/README.md), never for real labels.
"""

from __future__ import annotations

import argparse
import csv
import os


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--query', required=True, help='the query folder, DIR/queries/round_<r>')
  parser.add_argument('--truth', required=True, help='path,label of the true labels')
  parser.add_argument('--out', required=True)
  parser.add_argument('--format', choices=('query', 'answers'), default='query')
  parser.add_argument('--limit', type=int, default=None)
  args = parser.parse_args()
  with open(args.truth, newline='') as f:
    truth = {row['path']: row['label'] for row in csv.DictReader(f)}
  with open(os.path.join(args.query, 'query.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  answered = rows if args.limit is None else rows[:args.limit]
  for row in answered:
    row['label'] = truth[row['path']]
  with open(args.out, 'w', newline='') as f:
    if args.format == 'query':
      writer = csv.DictWriter(f, list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)
    else:
      writer = csv.writer(f)
      writer.writerow(('path', 'label'))
      writer.writerows((row['path'], row['label']) for row in answered)
  print(f'answered {len(answered)} of {len(rows)} queried images into {args.out}')


if __name__ == '__main__':
  main()
