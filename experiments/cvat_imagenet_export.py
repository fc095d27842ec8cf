"""Write a CVAT-style "ImageNet 1.0" export zip with Datumaro's own exporter.

Why: jal imports human labels from a CVAT "ImageNet 1.0" export. Test
fixtures in that format must come from the real exporter, not be written by
hand, so this script drives the same code path CVAT uses:

* CVAT's ``cvat/apps/dataset_manager/formats/imagenet.py`` builds a Datumaro
  dataset from the task (``GetCVATDataExtractor``), then, when "Save images" is
  on, calls ``dataset.export(temp_dir, "imagenet", save_images=True)`` and zips
  ``temp_dir`` with ``cvat.apps.dataset_manager.util.make_zip_archive``
  (``zipfile.ZipFile(dst, "w")`` -- i.e. ZIP_STORED -- over ``os.walk``, member
  names relative to ``temp_dir``, no directory entries).
  Without "Save images" CVAT exports ``imagenet_txt`` instead (``<subset>.txt``
  + ``synsets.txt``); that variant is not produced here.
* CVAT's extractor makes one ``DatasetItem`` per frame with
  ``id = os.path.splitext(frame_name)[0]`` (frame_name is the image path as the
  task stores it, possibly with folders) and media whose path is the frame name
  (original extension) carrying the original encoded bytes, so the exporter
  copies the bytes unchanged (no re-encoding, no renaming besides the label
  folder).  Each Label (CVAT tag) puts one copy under ``<label>/``; an image
  with no tag goes under ``no_label/``.

Here each CSV row ``path,label`` (``path`` relative to ``--project``) becomes an
item with ``id = splitext(path)[0]`` and ``Image.from_file(project/path)``
(file-backed, so Datumaro copies the bytes verbatim, like CVAT's ByteImage).
An empty label leaves the item untagged (-> ``no_label/``).  Labels are
declared in order of first appearance unless ``--labels`` is given.

Resulting member names: ``<label>/<splitext(path)[0]><original ext>``, e.g.
``cat/unlabeled/sub/img_003.png``.

Needs ``datumaro`` (PyPI; tested with 1.13.12).  CVAT itself pins its fork
``cvat-ai/datumaro`` (version 0.3); its ImageNet converter names files the same
way for ids without ``:``.  The PyPI exporter takes ``save_media=True``
(CVAT's fork still accepts the deprecated ``save_images=True``).

Example::

    python experiments/cvat_imagenet_export.py \\
        --project tests/fixtures/cvat/project \\
        --answers tests/fixtures/cvat/answers.csv \\
        --out tests/fixtures/cvat/imagenet_export.zip
"""

from __future__ import annotations

import argparse
import csv
import os
import os.path as osp
import tempfile
import zipfile


def read_answers(path: str) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"path", "label"} <= set(reader.fieldnames):
            raise SystemExit(f"{path}: expected a header with columns 'path,label'")
        return [(row["path"].strip(), (row["label"] or "").strip()) for row in reader]


def make_zip_archive(src_path: str, dst_path: str) -> None:
    """Same as CVAT's ``dataset_manager.util.make_zip_archive`` (ZIP_STORED,
    relative member names, no directory entries); walk order is sorted here
    so the member order is reproducible."""
    with zipfile.ZipFile(dst_path, "w") as archive:
        for dirpath, dirnames, filenames in os.walk(src_path):
            dirnames.sort()
            for name in sorted(filenames):
                path = osp.join(dirpath, name)
                archive.write(path, osp.relpath(path, src_path))


def export(project: str, rows: list[tuple[str, str]], out: str, labels: list[str] | None) -> list[str]:
    import datumaro as dm

    names = list(labels or [])
    for _, label in rows:
        if label and label not in names:
            if labels:
                raise SystemExit(f"label {label!r} not in --labels")
            names.append(label)

    items = []
    for rel, label in rows:
        src = osp.join(project, rel)
        if not osp.isfile(src):
            raise SystemExit(f"missing image: {src}")
        item_id = osp.splitext(rel.replace(os.sep, "/"))[0]
        anns = [dm.Label(names.index(label))] if label else []
        items.append(dm.DatasetItem(id=item_id, media=dm.Image.from_file(path=src), annotations=anns))

    dataset = dm.Dataset.from_iterable(items, categories=names, media_type=dm.Image)
    with tempfile.TemporaryDirectory() as tmp:
        dataset.export(tmp, "imagenet", save_media=True)
        os.makedirs(osp.dirname(osp.abspath(out)), exist_ok=True)
        make_zip_archive(tmp, out)
    with zipfile.ZipFile(out) as z:
        return z.namelist()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--project", required=True, help="folder the CSV paths are relative to")
    p.add_argument("--answers", required=True, help="CSV with header path,label")
    p.add_argument("--out", required=True, help="zip file to write")
    p.add_argument("--labels", help="comma-separated label list (CVAT task labels), default: as they appear")
    args = p.parse_args()
    labels = [s for s in args.labels.split(",") if s] if args.labels else None
    members = export(args.project, read_answers(args.answers), args.out, labels)
    import datumaro

    print(f"datumaro {datumaro.__version__}: wrote {args.out}")
    for m in members:
        print("  " + m)


if __name__ == "__main__":
    main()
