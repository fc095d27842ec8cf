"""Tests of stochastic batch acquisition over any score (Kirsch et al., TMLR 2023), chosen by
config.strategy.sampling in `jal.strategies.base.Strategy.select_by_score`: the first draw
follows Kirsch et al.'s power, softmax and soft-rank distributions (a frequency test over many
draws), top-k stays the default, margin scores are shifted by their lower bound for power, and
strategies that do not rank by one score refuse sampling in one line."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import build_strategy, tiny_config
from helpers import TableTask, table_context
from jal import selection, strategies
from jal.errors import JalError


def _ctx(config, data, logits, round_=0):
  """Round ``round_`` with every row of ``logits`` a candidate (one more example labeled)."""
  n = logits.shape[0]
  return table_context(config, data, TableTask(classifier=logits), np.arange(n), [n], n + 1,
                       round_)


def _reference_distribution(scores, mode, beta):
  """Kirsch et al. (2023), Sec. 3: p ∝ s^beta, exp(beta s), or r^-beta (r the 1-based rank)."""
  s = np.asarray(scores, np.float64)
  if mode == 'power':
    w = s ** beta
  elif mode == 'softmax':
    w = np.exp(beta * (s - s.max()))
  else:
    rank = np.empty(s.size)
    rank[np.argsort(-s, kind='stable')] = np.arange(1, s.size + 1)
    w = rank ** -beta
  return w / w.sum()


def _entropy(logits):
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  return -(p * np.log(p)).sum(-1)


# Two classes: entropies of p = 0.95, 0.85, 0.7, 0.5, in increasing order.
_P = np.array([0.95, 0.85, 0.7, 0.5])
_LOGITS = np.log(np.stack([_P, 1 - _P], -1)).astype(np.float32)


@pytest.mark.parametrize('mode,beta', [('power', 1.0), ('softmax', 4.0), ('softrank', 1.0)])
def test_the_first_draw_follows_kirsch_et_al_distributions(mode, beta):
  config = tiny_config('entropy', **{'strategy.sampling': mode, 'strategy.sampling_beta': beta})
  strategy, dataset = build_strategy(config)
  scores = _entropy(_LOGITS.astype(np.float64))
  draws = 2000
  first = np.array([strategy.select_by_score(_ctx(config, None, _LOGITS, r), scores, 1)[0]
                    for r in range(draws)])
  expected = _reference_distribution(scores, mode, beta)
  frequency = np.bincount(first, minlength=4) / draws
  sigma = np.sqrt(expected * (1 - expected) / draws)
  assert (np.abs(frequency - expected) < 4 * sigma).all(), (frequency, expected)
  # The query goes through it, deterministic per round (a resumed run draws the same batch).
  query = strategy.query(_ctx(config, dataset.pool_data(), _LOGITS, 7), 3)
  np.testing.assert_array_equal(query, strategy.select_by_score(
      _ctx(config, None, _LOGITS, 7), scores.astype(np.float32), 3))
  assert np.unique(query).size == 3


def test_top_k_is_the_default_and_power_margin_draws_one_minus_the_gap():
  config = tiny_config('margin')
  assert (config.strategy.sampling, config.strategy.sampling_beta) == ('top_k', 1.0)
  strategy, dataset = build_strategy(config)
  query = strategy.query(_ctx(config, dataset.pool_data(), _LOGITS), 2)
  np.testing.assert_array_equal(query, [3, 2])  # the smallest gaps, as before
  config = tiny_config('margin', **{'strategy.sampling': 'power'})
  strategy, _ = build_strategy(config)
  gap = np.abs(2 * _P - 1)
  scores = -gap
  # Power over 1 - gap (the margin score plus its lower bound 1), like power_margin.
  got = strategy.select_by_score(_ctx(config, dataset.pool_data(), _LOGITS), scores, 4)
  want = selection.stochastic_top_k(1.0 - gap, np.arange(4), 4,
                                    _ctx(config, None, _LOGITS).numpy_rng('sampling'))
  np.testing.assert_array_equal(got, want)


def test_a_strategy_that_does_not_rank_by_one_score_refuses_sampling_in_one_line():
  with pytest.raises(JalError, match="sampling='softmax' applies to strategies that rank") as e:
    build_strategy(tiny_config('coreset', **{'strategy.sampling': 'softmax'}))
  assert '\n' not in str(e.value)
  with pytest.raises(JalError, match="needs a score bounded below; learning_loss"):
    build_strategy(tiny_config('learning_loss', **{'strategy.sampling': 'power'}))
  with pytest.raises(JalError, match=r"sampling='gumbel' is unknown"):
    build_strategy(tiny_config('entropy', **{'strategy.sampling': 'gumbel'}))
  with pytest.raises(JalError, match="'power_entropy' samples with 'power'"):
    build_strategy(tiny_config('power_entropy', **{'strategy.sampling': 'softrank'}))


def test_the_power_aliases_fix_power_sampling():
  family, fixed = strategies.resolve('bald')
  assert strategies.resolve('power_bald') == (family, {**fixed, 'sampling': 'power'})
  strategy, _ = build_strategy(tiny_config('power_entropy'))
  assert (strategy.sampling, strategy.settings.score) == ('power', 'entropy')
