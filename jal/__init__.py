"""jal: deep pool-based active learning on images, in JAX.

Entry points: ``python -m jal.main`` and ``python -m jal.compare`` (the
command lines), `jal.experiment.run` (the loop, for notebooks),
`jal.acquisition` and `jal.selection` (pure functions for your own arrays),
`jal.strategies` (one module per strategy; `docs/strategies.md` says how to
write one).
"""

__version__ = '0.1.0'
