"""The Bayesian CNN of deep Bayesian active learning on MNIST (Gal, Islam & Ghahramani 2017).

Gal et al. 2017 (Sec. 5.1) assess every MC-dropout acquisition function with
one network, "convolution-relu-convolution-relu-max pooling-dropout-dense-
relu-dropout-dense-softmax, with 32 convolution kernels, 4x4 kernel size,
2x2 pooling, dense layer with 128 units, and dropout probabilities 0.25 and
0.5", following the Keras MNIST CNN example (fchollet 2015). It has no batch
norm, so its dropout trains without the variance shift of a batch-normalised
network (Li et al., CVPR 2019), and a pass with dropout costs little more
than one without.

Here the network up to the second dropout is the backbone: its pooled
features are the 128 dropped-out units the final dense layer reads, and jal
adds that layer as the classifier head (`jal.models.ClassifierHead`).
"""

from __future__ import annotations

from typing import ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal.errors import JalError
from jal.models.features import Backbone, Features
from jal.models.layers import max_pool_2x2, mc_dropout

# The Keras layers' default kernel initialiser (biases zero), as in the paper's code.
_GLOROT_UNIFORM = nn.initializers.glorot_uniform()
# Two 4x4 'valid' convolutions take 6 pixels off each side's length; the
# smallest input keeps one pixel for the 2x2 pool.
MIN_SIZE = 7


class DBALCNN(Backbone):
  """conv 4x4 - ReLU - conv 4x4 - ReLU - max-pool 2x2 - dropout - dense - ReLU - dropout.

  Gal, Islam & Ghahramani 2017, Sec. 5.1: 32 kernels of 4x4 in both
  convolutions ('valid' padding, with bias, as Keras's default), 2x2
  max-pool, dropout 0.25, a 128-unit dense layer with ReLU, dropout 0.5.
  A 28x28 MNIST image gives 25x25, 22x22 and 11x11 maps, 3,872 inputs to
  the dense layer; with jal's 10-class head the network has 513,994
  parameters. Initialisation: Glorot-uniform kernels and zero biases (the
  Keras defaults).

  The two dropout layers are the network's own (``own_dropout``): they are
  part of the architecture, so every strategy trains with them, and like all
  of jal's dropout (`jal.models.layers.mc_dropout`) they are active exactly
  when ``apply`` gets a ``'dropout'`` PRNG stream: in training and in the
  MC passes of BALD and DBAL, not in `jal.train.Trainer.predict`, whose
  deterministic output is the weight-scaling approximation (inverted
  dropout: no rescaling at test time). No batch norm: ``train`` changes
  nothing.

  Attributes:
    width: kernels per convolution (the paper's 32).
    hidden: units of the dense layer (the paper's 128): ``pooled``'s width.
    conv_dropout: the rate of the dropout after the max-pool (0.25).
    dense_dropout: the rate of the dropout after the dense layer (0.5).
    dropout_rate: the backbone-wide MC dropout of every backbone
      (`jal.models.Backbone`): here after each convolution's ReLU, on top of
      the network's own two layers; 0 (default): none.
  """

  own_dropout: ClassVar[bool] = True

  width: int = 32
  hidden: int = 128
  conv_dropout: float = 0.25
  dense_dropout: float = 0.5

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> Features:
    """`Features` (see `Backbone`): ``pooled`` float32 ``[B, hidden]``; ``blocks`` the first
    convolution's map ``[B, H - 3, W - 3, width]`` and the pooled map after its dropout
    ``[B, (H - 6) // 2, (W - 6) // 2, width]``.

    Raises:
      JalError: the image is smaller than 7x7.
    """
    del train  # no batch norm
    if min(x.shape[1:3]) < MIN_SIZE:
      raise JalError(f'the DBAL CNN needs images of at least {MIN_SIZE}x{MIN_SIZE} pixels '
                     f'(two 4x4 valid convolutions and a 2x2 pool), got {x.shape[1]}x'
                     f'{x.shape[2]}; resize them (config.dataset.image_size) or use small_cnn')
    conv = lambda name: nn.Conv(self.width, (4, 4), padding='VALID', use_bias=True,
                                dtype=self.dtype, param_dtype=jnp.float32,
                                kernel_init=_GLOROT_UNIFORM, name=name)
    first = mc_dropout(self, nn.relu(conv('conv1')(x)), self.dropout_rate)
    y = mc_dropout(self, nn.relu(conv('conv2')(first)), self.dropout_rate)
    pooled_map = mc_dropout(self, max_pool_2x2(y), self.conv_dropout)
    y = pooled_map.reshape(pooled_map.shape[0], -1)
    y = nn.relu(nn.Dense(self.hidden, dtype=self.dtype, param_dtype=jnp.float32,
                         kernel_init=_GLOROT_UNIFORM, name='dense')(y))
    pooled = mc_dropout(self, y.astype(jnp.float32), self.dense_dropout)
    return Features(pooled=pooled, blocks=(first, pooled_map))
