r"""Paper 001 on MNIST: the initial pool chosen by self-supervision.

  python -m jal.main --config configs/initial_pools_mnist.py --workdir runs/ip_mnist

5% initial pool (the highest rotation-prediction losses of a ResNet-18
trained on the whole unlabeled pool), +10% per round, max-entropy queries,
ResNet-18 with Adam 5e-4; see `jal.config_util.initial_pools_protocol`. Other
initial pools: ``--config.initial_pool.name=random|vae_loss|kmeans|binned``
(`jal.initial_pools`). The paper's study, over 5 trials:

  JAL_DATA_DIR=../shared/data python -m jal.compare \
      --config configs/initial_pools_mnist.py:runlocal \
      --initial_pools=random,pretext_loss,kmeans --strategies=entropy --seeds=0,1,2,3,4 --workdir runs/ip_mnist_compare

  :runlocal   real data, shrunk to run in minutes on 2 CPU cores:
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/initial_pools_mnist.py:runlocal --workdir runs/ip_mnist_local
"""

from jal import config_util


def get_config(arg=None):
  return config_util.initial_pools_protocol('mnist', arg)
