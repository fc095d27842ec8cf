"""Tests of jal.significance, the paired tests over seeds: the pairwise penalty matrix (Ash et
al. 2020, Sec. 5) and the one-sided paired t-test of each strategy's AUC against random, on a fixture of
3 strategies x 3 seeds x 3 rounds whose t statistics and p-values are computed here from the
definitions (the t distribution with 2 degrees of freedom has a closed-form CDF); the sum over
settings; the normalised area under the curve by hand; the refusals; and the summary files and the
command line of jal.compare that show them."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from jal import cli, compare, comparison, results, significance, workdir as workdir_lib
from jal.errors import JalError

LABELS = [100, 150, 200]
SEEDS = (0, 1, 2)
# Per seed, round 0 is the shared initial pool: the same for every strategy.
ROUND0 = np.array([0.50, 0.52, 0.48])
A = np.array([ROUND0, [0.60, 0.62, 0.58], [0.70, 0.71, 0.69]]).T  # [seed, round]
# b beats a at round 1 (differences 0.05, 0.06, 0.07: t = 10.4, p = 0.009) but not at round 2.
B = A + np.array([[0, 0.05, 0.01], [0, 0.06, -0.01], [0, 0.07, 0.02]])
# a beats c at round 2 (differences 0.03, 0.04, 0.05: t = 6.9, p = 0.020); round 1 is noise.
C = A + np.array([[0, 0.05, -0.03], [0, -0.02, -0.04], [0, 0.04, -0.05]])


def _records(curves: dict[str, np.ndarray], labels=LABELS) -> dict:
  """``records[strategy][seed]``: rounds with the fields `summarize` and `write_summary` read."""
  return {name: {seed: [{'num_labeled': n, 'test_accuracy': float(acc), 'dataset': 'toy',
                         'strategy': name, 'query_class_counts': [1, 2]}
                        for n, acc in zip(labels, curve[k])]
                 for k, seed in enumerate(SEEDS)}
          for name, curve in curves.items()}


def _t_and_p(d: np.ndarray, one_sided: bool = False) -> tuple[float, float]:
  """Student's t of the mean of ``d`` (3 values), and its p-value from the closed-form CDF of
  the t distribution with 2 degrees of freedom, F(t) = 1/2 + t / (2 sqrt(2 + t^2))."""
  assert d.shape == (3,)
  t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
  upper = 0.5 - t / (2 * math.sqrt(2 + t * t))  # P(T > t)
  return t, upper if one_sided else 2 * min(upper, 1 - upper)


def _reference_penalty(curves: dict[str, np.ndarray], rounds: list[int]) -> np.ndarray:
  """Ash et al.'s P[i, j] over ``rounds``: the fraction of the rounds at which i beat j,
  among those at which the two differ on some seed."""
  names = list(curves)
  out = np.zeros((len(names), len(names)))
  for i, a in enumerate(names):
    for j, b in enumerate(names):
      differ = [r for r in rounds if np.any(curves[a][:, r] != curves[b][:, r])]
      for r in differ:
        t, p = _t_and_p(curves[a][:, r] - curves[b][:, r])
        out[i, j] += (p < 0.05 and t > 0) / len(differ)
  return out


def test_the_fixtures_tests_by_hand():
  """The fixture is what the tests below say it is: one significant and one near-miss case."""
  t, p = _t_and_p(B[:, 1] - A[:, 1])
  assert t == pytest.approx(0.06 / (0.01 / math.sqrt(3))) and p == pytest.approx(0.00916, abs=1e-4)
  t, p = _t_and_p(A[:, 2] - C[:, 2])
  assert t == pytest.approx(0.04 / (0.01 / math.sqrt(3))) and p == pytest.approx(0.0202, abs=1e-4)
  _, p = _t_and_p(B[:, 2] - C[:, 2])  # differences 0.04, 0.03, 0.07: not significant
  assert 0.05 < p < 0.07
  _, p = _t_and_p(C[:, 1] - A[:, 1])
  assert p > 0.3


def test_penalty_matrix_against_the_definition():
  curves = {'a': A, 'b': B, 'c': C}
  penalty = significance.penalty_matrix(_records(curves))
  assert penalty['strategies'] == ['a', 'b', 'c'] and penalty['seeds'] == [0, 1, 2]
  # Round 0 (the shared initial pool, identical everywhere) is no comparison: L = 2.
  assert penalty['num_labeled'] == [150, 200]
  matrix = np.array(penalty['matrix'])
  np.testing.assert_allclose(matrix, _reference_penalty(curves, [1, 2]), atol=1e-12)
  np.testing.assert_allclose(matrix, [[0, 0, 0.5], [0.5, 0, 0], [0, 0, 0]])
  np.testing.assert_allclose(penalty['column_mean'], [0.5 / 3, 0, 0.5 / 3])  # Ash: over S rows
  np.testing.assert_allclose(penalty['row_sum'], [0.5, 0.5, 0])


def test_rounds_that_differ_count_even_when_no_test_is_significant():
  """Round 0 counts for the pairs whose round 0 differs (another initial pool, with
  --initial_pools, or another task model, BatchBALD's), and only for them."""
  shifted = C.copy()
  shifted[:, 0] += np.array([0.01, -0.02, 0.005])
  curves = {'a': A, 'b': B, 'c': shifted}
  penalty = significance.penalty_matrix(_records(curves))
  assert penalty['num_labeled'] == LABELS
  assert penalty['pair_sizes'] == [[0, 2, 3], [2, 0, 3], [3, 3, 0]]
  np.testing.assert_allclose(penalty['matrix'], _reference_penalty(curves, [0, 1, 2]),
                             atol=1e-12)
  # b beat a at 1 of the 2 sizes where they differ (not 1 of 3); a beat c at 1 of 3.
  np.testing.assert_allclose(penalty['matrix'], [[0, 0, 1 / 3], [0.5, 0, 0], [0, 0, 0]])


def test_equal_nonzero_differences_are_significant_and_zero_differences_are_not():
  """A strategy ahead by the same amount on every seed: t = inf, p = 0 (scipy), as the
  authors' code counts it. Identical results: no test, no penalty."""
  assert significance.paired_t_test([0.5, 0.625, 0.75], [0.25, 0.375, 0.5]) == (math.inf, 0.0)
  t, p = significance.paired_t_test([0.5, 0.6], [0.5, 0.6])
  assert math.isnan(t) and math.isnan(p)
  ahead = A + np.array([0, 0.125, 0.125])
  penalty = significance.penalty_matrix(_records({'a': A, 'd': ahead}))
  np.testing.assert_allclose(penalty['matrix'], [[0, 0], [1, 0]])


def test_saturation_cuts_where_random_reaches_the_fraction_of_its_final_mean():
  """Ash et al.: sizes before random's mean exceeds 0.99 of its last (0.50, 0.60, 0.70)."""
  curves = {'random': A, 'b': B, 'c': C}
  penalty = significance.penalty_matrix(_records(curves), saturation=0.99)
  assert penalty['num_labeled'] == [150]
  np.testing.assert_allclose(penalty['matrix'], _reference_penalty(curves, [1]), atol=1e-12)
  assert np.array(penalty['matrix'])[1, 0] == 1.0
  # At 0.8 random is saturated from round 1 on: only the identical round 0 is left.
  assert 'n/a' in significance.penalty_matrix(_records(curves), saturation=0.8)
  with pytest.raises(JalError, match='random is not among'):
    significance.penalty_matrix(_records({'a': A, 'b': B}), saturation=0.99)
  with pytest.raises(JalError, match=r'must be in \(0, 1\]'):
    significance.penalty_matrix(_records(curves), saturation=1.5)


def test_beats_random_is_a_one_sided_paired_t_test_on_auc():
  records = _records({'random': A, 'b': B, 'c': C})
  verdicts = significance.beats_random(records)
  assert set(verdicts) == {'b', 'c'}
  x = np.array(LABELS, float)
  auc = {name: np.array([np.trapezoid(curve[k], x) / 100 for k in range(3)])
         for name, curve in (('random', A), ('b', B), ('c', C))}
  for name, significant in (('b', True), ('c', False)):
    d = auc[name] - auc['random']
    t, p = _t_and_p(d, one_sided=True)
    v = verdicts[name]
    assert v['t'] == pytest.approx(t) and v['p'] == pytest.approx(p)
    assert v['auc_difference_mean'] == pytest.approx(d.mean())
    assert v['significant'] is significant and v['seeds'] == [0, 1, 2]
    assert v['test'] == significance.AUC_TEST
  assert verdicts['b']['p'] == pytest.approx(0.0085, abs=2e-4)


def test_refusals():
  one_seed = {name: {0: rows[0]} for name, rows in _records({'random': A, 'b': B}).items()}
  assert 'at least 2 seeds' in significance.beats_random(one_seed)['b']['n/a']
  assert 'at least 2 seeds' in significance.penalty_matrix(one_seed)['n/a']
  no_random = significance.beats_random(_records({'a': A, 'b': B}))
  assert no_random['a']['n/a'] == no_random['b']['n/a'] == 'random is not among the strategies'
  assert 'two strategies' in significance.penalty_matrix(_records({'a': A}))['n/a']
  other_budget = _records({'a': A})
  other_budget.update(_records({'b': B}, labels=[100, 160, 220]))
  with pytest.raises(JalError, match='different numbers per round'):
    significance.penalty_matrix(other_budget)


def test_settings_add_up():
  first = significance.penalty_matrix(_records({'a': A, 'b': B, 'c': C}))
  # A second setting, its strategies in another order: c beats b everywhere.
  second = significance.penalty_matrix(_records({'c': B, 'a': A, 'b': C}))
  total = significance.combine_penalties([first, second], ['s1', 's2'])
  assert total['strategies'] == ['a', 'b', 'c'] and total['settings'] == ['s1', 's2']
  np.testing.assert_allclose(total['matrix'], [[0, 0.5, 0.5], [0.5, 0, 0], [0.5, 0, 0]])
  np.testing.assert_allclose(total['column_mean'], np.array(total['matrix']).mean(0))
  with pytest.raises(JalError, match='same strategies'):
    significance.combine_penalties(
        [first, significance.penalty_matrix(_records({'a': A, 'b': B}))], ['s1', 's2'])


def test_area_under_curve_by_hand():
  assert significance.area_under_curve([0, 10], [0.2, 0.4]) == pytest.approx(0.3)
  assert significance.area_under_curve([0, 10, 30], [0.0, 0.6, 0.6]) == pytest.approx(
      (3 + 12) / 30)
  assert significance.area_under_curve([5], [0.7]) == 0.7
  with pytest.raises(ValueError, match='must increase'):
    significance.area_under_curve([10, 10], [0.1, 0.2])


def _write_comparison(path: str, curves: dict[str, np.ndarray]) -> None:
  os.makedirs(path)
  workdir_lib.start_comparison(path)
  for name, by_seed in _records(curves).items():
    for seed, rows in by_seed.items():
      os.makedirs(comparison.run_dir(path, name, seed))
      results.write_jsonl(rows, os.path.join(comparison.run_dir(path, name, seed),
                                              workdir_lib.RESULTS))


def test_summary_files_and_the_command_line(tmp_path, capsys):
  one, two = str(tmp_path / 'one'), str(tmp_path / 'two')
  _write_comparison(one, {'random': A, 'b': B, 'c': C})
  _write_comparison(two, {'random': A, 'b': B, 'c': C})
  summary = comparison.write_summary(one, ['random', 'b', 'c'], SEEDS, settings=[two])
  with open(os.path.join(one, comparison.SUMMARY_JSON)) as f:
    assert json.load(f) == summary
  assert summary['b']['penalty']['beats'] == {'random': 0.5, 'c': 0.0}
  assert summary['random']['penalty']['beats'] == {'b': 0.0, 'c': 0.5}
  assert summary['b']['beats_random']['significant'] and 'beats_random' not in summary['random']
  assert summary['random']['penalty_settings']['beats'] == {'b': 0.0, 'c': 1.0}
  assert summary['random']['penalty_settings']['settings'] == [one, two]
  assert os.path.getsize(os.path.join(one, comparison.PENALTY_PLOT)) > 0
  with open(os.path.join(one, comparison.SUMMARY_TABLE)) as f:
    table = f.read()
  assert '| `b` | 3 |' in table and '| yes (p = 0.008, +3.2) |' in table
  assert '| `random` | — | 0.00 | 0.50 | 0.50 |' in table
  assert 'penalty matrix over 2 settings' in table
  with pytest.raises(JalError, match='each other comparison once'):
    comparison.write_summary(one, ['random', 'b', 'c'], SEEDS, settings=[one])
  # The command line (in this process, as tests/test_cli.py runs it) re-renders it; a refusal
  # is a line of the summary, or one error line. (Rendering is most of this test's time.)
  argv = ['jal', '--summary_only', f'--workdir={one}', '--strategies=random,b,c', '--seeds=0,1,2',
          f'--settings={two}']
  assert cli.execute(compare.main, argv + ['--seeds=0']) == 0
  assert 'n/a: a paired test over seeds needs at least 2 seeds' in capsys.readouterr().out
  assert cli.execute(compare.main, argv + ['--strategies=b,c', '--saturation=0.99']) == 2
  assert 'random is not among the strategies' in capsys.readouterr().err
