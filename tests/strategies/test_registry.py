"""Tests of jal.strategies, the registry of strategies by name: every baseline is
registered, aliases are variants of one module, and every module's defaults are
in the config under its own name."""

from __future__ import annotations

import pytest

from helpers import BASELINES as _BASELINES
from jal import strategies


def test_every_baseline_is_registered():
  assert set(_BASELINES) <= set(strategies.available())


def test_aliases_name_variants_of_one_module_and_every_module_has_its_section():
  import ml_collections
  from jal.errors import JalError
  assert strategies.resolve('bald') == ('mc_dropout', {'score': 'bald'})
  assert strategies.resolve('tavaal') == ('vaal', {'task_aware': True})
  assert strategies.resolve('learning_loss_v2') == ('learning_loss', {'ranking': 'pairwise'})
  assert strategies.resolve('pal') == ('pal', {})
  assert {'mc_dropout', 'ensemble', 'uncertainty', 'learning_loss', 'vaal', 'pal', 'mal',
          'scal', 'dfm', 'power_margin'} <= set(strategies.default_config())
  assert strategies.default_config('coreset').name == 'coreset'
  with pytest.raises(JalError, match="unknown strategy 'nope'"):
    strategies.resolve('nope')
  config = ml_collections.ConfigDict({'strategy': strategies.default_config('dbal_last_layer')})
  settings = strategies.settings(config)
  assert (settings.score, settings.dropout, settings.num_mc_samples) == ('dbal', 'last_layer', 50)
  assert strategies.get('dbal_last_layer') is strategies.get('mc_dropout')


def test_an_alias_refuses_a_setting_that_contradicts_it_in_one_line():
  import ml_collections
  from jal.errors import JalError
  config = ml_collections.ConfigDict({'strategy': strategies.default_config('bald')})
  config.strategy.mc_dropout.score = 'dbal'
  with pytest.raises(JalError, match=r"'bald' is mc_dropout with score='bald'.*"
                                     r"--config.strategy.name=mc_dropout") as info:
    strategies.settings(config)
  assert '\n' not in str(info.value)
  config.strategy.name = 'mc_dropout'  # the module itself takes the section as it is
  assert strategies.settings(config).score == 'dbal'
