"""The CPU-versus-accelerator policy, decided in one place.

Two choices depend on the backend, because XLA:CPU compiles some programs
into much slower code than the same work written another way:

- `compiled_loops`: an epoch as one compiled ``lax.fori_loop`` over its
  batches (GPU, TPU), or a host loop that calls the compiled step once per
  batch (CPU, where XLA runs convolutions inside loop bodies many times
  slower: jax-ml/jax#12868).
- `vectorized_members`: several copies of a network (ensemble members,
  trials of a comparison) vmapped into one batched program (GPU, TPU), or
  run one after another in the same program (CPU, where vmapped
  convolutions become grouped convolutions, many times slower).

Both choices give the same numbers; only speed differs. The measurements
behind them are in ``BENCHMARKS.md`` (`experiments/profile_convolutions.py`,
`experiments/ensemble_step.py`, `experiments/vectorized_seeds.py`).
"""

from __future__ import annotations

import jax


def on_accelerator() -> bool:
  """Whether the default backend is a GPU or TPU (not the CPU)."""
  return jax.default_backend() != 'cpu'


def compiled_loops(override: bool | None = None) -> bool:
  """Whether an epoch runs as one compiled loop (True) or a host loop of compiled steps.

  Args:
    override: the config's choice (``config.train.compiled_epochs``); None
      decides by backend: True on GPU/TPU, False on CPU.
  """
  return on_accelerator() if override is None else bool(override)


def vectorized_members(override: bool | None = None) -> bool:
  """Whether copies of a network are vmapped (True) or run one after another.

  Args:
    override: an explicit choice; None decides by backend: True on GPU/TPU,
      False on CPU.
  """
  return on_accelerator() if override is None else bool(override)
