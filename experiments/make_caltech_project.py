r"""Makes a labeling project from the Caltech-101 copy, as a user's unlabeled photos would be.

  python experiments/make_caltech_project.py --zip ../shared/data/caltech101_160px.zip \
      --out /tmp/caltech_project --truth /tmp/caltech_truth.csv

The images of every class (BACKGROUND_Google left out) go to ``unlabeled/``
with the class folders removed (renamed ``img_<n>.jpg`` in a shuffled order,
so neither the folder nor the name tells the class); ``--test_per_class`` of
each class stay labeled in ``test/<class>/``. The true labels of the
unlabeled images go to ``--truth`` (``path,label``), outside the project,
for a script that plays the annotator (experiments/README.md, "Label your
own images: a walk-through").
"""

from __future__ import annotations

import argparse
import csv
import os
import zipfile

import numpy as np


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--zip', required=True)
  parser.add_argument('--out', required=True, help='the project folder (must not exist)')
  parser.add_argument('--truth', required=True, help='the CSV of true labels to write')
  parser.add_argument('--test_per_class', type=int, default=8)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args()
  if os.path.exists(args.out):
    parser.error(f'--out {args.out} exists; give a new folder')
  rng = np.random.default_rng(args.seed)
  with zipfile.ZipFile(args.zip) as z:
    members = [m for m in z.namelist() if m.lower().endswith('.jpg')
               and '/BACKGROUND_Google/' not in m]
    by_class: dict[str, list[str]] = {}
    for m in members:
      by_class.setdefault(m.split('/')[-2], []).append(m)
    unlabeled = []
    for name, files in sorted(by_class.items()):
      files = sorted(files)
      chosen = set(rng.choice(len(files), min(args.test_per_class, len(files) - 1),
                              replace=False).tolist())
      for k, member in enumerate(files):
        if k in chosen:
          target = os.path.join(args.out, 'test', name, os.path.basename(member))
          os.makedirs(os.path.dirname(target), exist_ok=True)
          with open(target, 'wb') as f:
            f.write(z.read(member))
        else:
          unlabeled.append((member, name))
    order = rng.permutation(len(unlabeled))
    os.makedirs(os.path.join(args.out, 'unlabeled'), exist_ok=True)
    with open(args.truth, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(('path', 'label'))
      for n, k in enumerate(order):
        member, name = unlabeled[k]
        rel = f'unlabeled/img_{n:05d}.jpg'
        with open(os.path.join(args.out, rel), 'wb') as out:
          out.write(z.read(member))
        writer.writerow((rel, name))
  print(f'{len(unlabeled)} unlabeled images in {args.out}/unlabeled, '
        f'{sum(min(args.test_per_class, len(v) - 1) for v in by_class.values())} test images '
        f'in {len(by_class)} classes; true labels in {args.truth}')


if __name__ == '__main__':
  main()
