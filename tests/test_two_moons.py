"""experiments/two_moons.py (TA-VAAL's Fig. 1) runs, queries valid points and draws its figure."""

from __future__ import annotations

import importlib.util
import os

import numpy as np
from PIL import Image

from conftest import REPO


def load_script():
  path = os.path.join(REPO, 'experiments', 'two_moons.py')
  spec = importlib.util.spec_from_file_location('two_moons', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_two_moons_queries_valid_points_and_writes_the_figure(tmp_path, capsys):
  two_moons = load_script()
  out = tmp_path / 'figure' / 'two_moons.png'
  result = two_moons.main(['--stages=2', '--epochs=5', '--seed=3', f'--out={out}'])

  with Image.open(out) as image:
    image.verify()
  with Image.open(out) as image:
    assert image.format == 'PNG'
    width, height = image.size
    assert width > 2 * height > 0  # three panels side by side
    pixels = np.asarray(image.convert('L'))
  assert pixels.std() > 10  # not a blank canvas

  results, initial = result['results'], result['initial']
  assert list(results) == ['learning_loss', 'vaal', 'ta_vaal']
  assert len(initial) == 20 and len(np.unique(initial)) == 20
  for method, records in results.items():
    assert [r['stage'] for r in records] == [1, 2], method
    np.testing.assert_array_equal(records[0]['labeled'], np.sort(initial))  # same start for all
    for record, following in zip(records, records[1:] + [None]):
      labeled, chosen = record['labeled'], record['query']
      assert chosen.shape == (10,), method
      assert len(np.unique(chosen)) == 10, method
      assert np.all((chosen >= 0) & (chosen < 550)), method
      assert not np.isin(chosen, labeled).any(), method
      np.testing.assert_array_equal(np.sort(np.concatenate([labeled, record['unlabeled']])),
                                    np.arange(550))
      if following is not None:
        np.testing.assert_array_equal(following['labeled'],
                                      np.sort(np.concatenate([labeled, chosen])))
      assert 0.0 <= record['accuracy'] <= 1.0
    summary = result['summaries'][method]
    assert summary['query_spread'] > 0 and summary['pool_spread'] > 0
  printed = capsys.readouterr().out
  assert 'Learning Loss' in printed and 'TA-VAAL' in printed and 'spread' in printed

  # Deterministic given the seed: a second run queries exactly the same points.
  again = two_moons.run(seed=3, stages=2, epochs=5, out=str(tmp_path / 'again.png'),
                        verbose=False)['results']
  for method, records in results.items():
    for first, second in zip(records, again[method]):
      np.testing.assert_array_equal(first['query'], second['query'])
      assert first['accuracy'] == second['accuracy']
