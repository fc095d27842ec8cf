"""A person's side of a run: what the loop does at each start and after each query.

At every start of a run whose oracle is a person (`open_answers`): the
labeling project must still be the one the run started with, round 0's
query is checkpointed before it is asked, a label file given with
``--labels`` is imported (`jal.human.answers`), the oracle learns every
answer so far and ``labels.csv`` is rendered. When a query waits (`ask`):
its files are written (`jal.human.query`) and one line says where they are
and the command that continues.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections

from jal import checkpoint, oracle as oracle_lib, workdir as workdir_lib
from jal.data import project as project_lib
from jal.errors import JalError
from jal.human import answers as answers_lib, query as query_lib


def run_id(config: ml_collections.ConfigDict) -> str:
  """A run's short identity, written into the files a person answers."""
  return workdir_lib.fingerprint(config)[:12]


def open_answers(config: ml_collections.ConfigDict, workdir: str, ckpt: checkpoint.Checkpointer,
                 project: project_lib.Project, person: oracle_lib.HumanOracle,
                 state: checkpoint.RunState, labels: str | None) -> checkpoint.RunState:
  """Checks the project, stores round 0's query, imports ``labels``, renders ``labels.csv``.

  Args:
    config: the run's config.
    workdir: the run's directory.
    ckpt: its checkpoints.
    project: the labeling project as it is now.
    person: the oracle; it learns every answer so far.
    state: the restored (or initial) state.
    labels: a label file to import, or None.

  Returns:
    The state, with ``labels`` imported (already checkpointed).

  Raises:
    JalError: the project changed since the run started (its images or
      classes), or a problem with ``labels`` (nothing written).
  """
  digest = project_lib.identity_digest(project)
  if state.data_digest is None and not state.records and not state.imports:
    state = dataclasses.replace(state, data_digest=digest)
  elif state.data_digest != digest:
    raise JalError(f'the labeling project {project.source} has changed since this run started '
                   f'({project.num_train} train images now, {state.pool.num_train} then, or '
                   "other names or classes): the run's images are fixed when it starts; "
                   'restore the project, or start a new run in another --workdir on a manifest '
                   f'made from {workdir}/{workdir_lib.LABELS_CSV}')
  if state.pending is not None and not ckpt.steps():
    ckpt.save(state)  # the question is stored before it is asked
  if labels is not None and project.segmentation:
    state, report = answers_lib.import_masks(
        workdir, state, labels, ckpt, project, config.dataset.image_size)
    print(f'jal: labels: {report}', flush=True)
  elif labels is not None:
    state, report = answers_lib.import_labels(
        workdir, state, labels, ckpt, project.train_paths, project.class_names,
        config.oracle.skip_label, run_id(config))
    print(f'jal: labels: {report}', flush=True)
  person.learn(state.pool.labeled, state.pool.oracle_labels)
  if not project.segmentation:  # masks are kept as the person gave them, in DIR/labels/
    query_lib.write_labels_csv(workdir, state.pool, project.train_paths, project.class_names)
  return state


def ask(config: ml_collections.ConfigDict, workdir: str, project: project_lib.Project,
        state: checkpoint.RunState, command: str | None) -> None:
  """Writes the waiting query's files and says, in one line, where they are and
  the command that continues (``command``; None: described in words)."""
  pending = query_lib.Pending.from_json(state.pending)
  folder = query_lib.write_query(workdir, project.root, pending, project.train_paths,
                                 project.class_names, config.oracle.skip_label, run_id(config),
                                 masks=project.segmentation)
  csv_file = os.path.join(folder, query_lib.QUERY_CSV)
  if project.segmentation:
    answer = 'MASKS (a folder of <stem>.png, a CVAT Segmentation mask zip or a Label Studio export)'
    then = (f'{command} --labels {answer}' if command else
            f'the same command with --labels {answer}')
  else:
    then = (f'{command} --labels {csv_file}' if command else
            f'the same command with --labels {csv_file} (or a Label Studio or CVAT export)')
  print(f'jal: {len(pending.remaining)} images wait for labels in {folder}/ '
        f'({query_lib.QUERY_CSV}, {query_lib.TASKS_JSON} and {query_lib.LABEL_CONFIG} for Label '
        f'Studio, {query_lib.CONTACT_SHEET}); label them, then run: {then}', flush=True)
