"""Tests of jal.strategies, the registry of strategies by name: every baseline is registered."""

from __future__ import annotations

from helpers import BASELINES as _BASELINES
from jal import strategies


def test_every_baseline_is_registered():
  assert set(_BASELINES) <= set(strategies.available())
