r"""Chandra et al. (2021) on MNIST: the initial pool chosen by self-supervision.

  python -m jal.main --config configs/initial_pools_mnist.py --workdir runs/initial_pools_mnist

The protocol of "On Initial Pools for Deep Active Learning": 5% of the train
split initially, +10% per round (Sec. 4, "AL Details"), for 5 rounds (to
45%: the paper gives no end); ResNet-18, Adam lr 5e-4, weight decay 5e-4
(Munjal et al.'s CIFAR-10 setting, Sec. 4), flips only; 100 epochs (not
given). The initial pool is ``pretext_loss`` (the highest rotation-prediction
losses of a ResNet-18 trained on the whole unlabeled pool), the query
``entropy`` (max-entropy, one of the paper's uncertainty methods). Other
initial pools: ``--config.initial_pool.name=random|vae_loss|kmeans|binned|typiclust|probcover``
(`jal.initial_pools`). The paper's study, over 5 trials:

  JAL_DATA_DIR=../shared/data python -m jal.compare \
      --config configs/initial_pools_mnist.py:runlocal --initial_pools=random,pretext_loss,kmeans \
      --strategies=entropy --seeds=0,1,2,3,4 --workdir runs/initial_pools_mnist_compare

  :runlocal   real data, shrunk to run in minutes on 2 CPU cores (a 10,000-image
              pool, 1,000 + 500 per round for 3 rounds, width-16 small CNNs for
              the task model and the rotation network, 15 epochs each):
    JAL_DATA_DIR=../shared/data python -m jal.main \
        --config configs/initial_pools_mnist.py:runlocal --workdir runs/initial_pools_mnist_local
"""

from configs import common


def get_config(arg=None):
  arg = common.parse_arg(arg, runlocal=False)
  config = common.base()
  config.dataset.name = 'mnist'
  config.initial_pool.name = 'pretext_loss'
  config.initial_pool.size = 0.05
  config.budget = 0.1
  config.num_rounds = 5
  config.model.name = 'resnet18'
  adam = dict(optimizer='adam', learning_rate=5e-4, momentum=0.0, weight_decay=5e-4,
              batch_size=128, crop_pad=0)
  config.train = common.train(epochs=100, **adam)
  config.initial_pool.ssl_model.name = 'resnet18'
  config.initial_pool.ssl_train = common.train(epochs=100, **adam)
  config.strategy.name = 'entropy'
  if arg.runlocal:
    common.runlocal(config)
    adam.update(learning_rate=2e-3, batch_size=64)
    config.train = common.train(epochs=15, lr_schedule='cosine', **adam)
    config.initial_pool.ssl_model.name = 'small_cnn'
    config.initial_pool.ssl_model.width = 16
    config.initial_pool.ssl_train = common.train(epochs=15, lr_schedule='cosine', **adam)
  return config
