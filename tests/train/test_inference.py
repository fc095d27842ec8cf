"""Tests of jal.train.inference.padded_batches: fixed-size int32 batches over an index array, the
last one padded with its own rows, each with its count of real rows."""

from __future__ import annotations

import numpy as np

from jal.train import inference


def test_padded_batches_pads_the_last_batch():
  indices = np.array([7, 3, 11, 5, 2, 9, 4, 8, 6, 1])
  got = list(inference.padded_batches(indices, 4))
  assert [valid for _, valid in got] == [4, 4, 2]
  for batch, _ in got:
    assert batch.dtype == np.int32 and batch.shape == (4,)
  np.testing.assert_array_equal(np.concatenate([b[:v] for b, v in got]), indices)
  np.testing.assert_array_equal(got[-1][0], [6, 1, 6, 1])  # padded with its own rows


def test_padded_batches_exact_multiple_and_small():
  got = list(inference.padded_batches(np.arange(6), 3))
  assert [v for _, v in got] == [3, 3]
  np.testing.assert_array_equal(got[1][0], [3, 4, 5])
  got = list(inference.padded_batches(np.array([42]), 8))
  assert len(got) == 1 and got[0][1] == 1
  np.testing.assert_array_equal(got[0][0], [42] * 8)
  assert list(inference.padded_batches(np.zeros(0, np.int64), 4)) == []
