"""Training objectives: pure loss functions of network outputs, optax-style.

Each objective used to train a network is a `LossFn`: it gets the network's
``apply`` function, its variables and a `Batch`, and returns the loss and the
metrics of the step. Every mean over a batch is over its real examples
(`masked_mean`), so padded batches of one fixed shape compile once.
"""

from jal.objectives.base import Batch, LossFn, masked_mean

__all__ = ['Batch', 'LossFn', 'masked_mean']
