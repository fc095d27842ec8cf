"""The comparison notebook executes headless (nbclient), cell by cell, without errors."""

from __future__ import annotations

import os

import pytest

from conftest import REPO

NOTEBOOK = os.path.join(REPO, 'experiments', 'compare.ipynb')


def test_comparison_notebook_executes_headless(tmp_path, monkeypatch):
  nbformat = pytest.importorskip('nbformat')
  nbclient = pytest.importorskip('nbclient')
  monkeypatch.setenv('JAL_NOTEBOOK_SMOKE', '1')
  monkeypatch.setenv('JAL_NOTEBOOK_WORKDIR', str(tmp_path / 'compare'))
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  assert all(not cell.get('outputs') for cell in notebook.cells if cell.cell_type == 'code'), (
      'commit the notebook without outputs')
  nbclient.NotebookClient(notebook, timeout=300, kernel_name='python3',
                          resources={'metadata': {'path': os.path.dirname(NOTEBOOK)}}).execute()
  outputs = [o for cell in notebook.cells if cell.cell_type == 'code'
             for o in cell.get('outputs', [])]
  assert not [o for o in outputs if o.output_type == 'error']
  markdown = [o.data['text/markdown'] for o in outputs if 'text/markdown' in o.get('data', {})]
  assert markdown and '| `margin` | 2 |' in markdown[0]
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(images) == 2
  assert os.path.exists(tmp_path / 'compare' / 'summary.md')
