"""Fixtures of the tests of jal.data: every test runs with JAL_DATA_DIR unset and its own cache and
tfds folders, so none reads the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
  """No test reads the user's data, cache or tfds folders."""
  monkeypatch.delenv("JAL_DATA_DIR", raising=False)
  monkeypatch.setenv("JAL_CACHE_DIR", str(tmp_path / "default_cache"))
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
