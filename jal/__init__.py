"""jal: deep pool-based active learning on images, in JAX.

Entry points: ``python -m jal.main`` (the command line), `jal.experiment.run`
(the loop, for notebooks), `jal.acquisition` and `jal.selection` (pure
functions for your own arrays), `jal.strategies` (one module per strategy).
"""

__version__ = '0.1.0'
