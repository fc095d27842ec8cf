"""Training: the train state and step, one on-device epoch driver, trials, inference.

- `state`: `TrainState` and one optimiser update.
- `epochs`: the epoch driver every fit uses (shuffled pools, fixed-size
  batches, compiled loop or host loop, exact epoch means).
- `trainer`: `Trainer` (a network, its loss and optimiser, compiled once)
  and `fit` over a set of pool indices.
- `joint`: `JointTrainer`, a labeled and an unlabeled batch per step.
- `trials`: `fit_trials`, several seeds vmapped into one program.
- `inference`: fixed-size batches over an index array (`map_batches`).
- `optim`, `config`: optimisers, schedules and the keys of a training config.
"""

from jal.train.config import optimizer_config, train_config
from jal.train.joint import JointTrainer
from jal.train.state import TrainState, apply_gradients, init_state
from jal.train.trainer import Trainer, epoch_schedule, fit
from jal.train.trials import fit_trials

__all__ = ['JointTrainer', 'Trainer', 'TrainState', 'apply_gradients', 'epoch_schedule', 'fit',
           'fit_trials', 'init_state', 'optimizer_config', 'train_config']
