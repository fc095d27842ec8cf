"""Segmentation networks (jal.models.segmentation_nets): output shapes, the output stride, and
DeepLabv3-MobileNetV2's parameter count against torchvision's modules composed the same way
(the counts printed by `experiments/segmentation_param_counts.py --reference` with torch
2.13.0 and torchvision 0.28.0)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import pytest

from jal.models import DeepLabHead, MobileNetV2, MultiHeadNet, PixelClassifierHead, SmallFCN

# torchvision: mobilenet_v2().features[:-1] + segmentation.deeplabv3.DeepLabHead(320, K).
TORCHVISION_PARAMETERS = {11: 5_111_307, 19: 5_113_363}


def _shapes(net, shape):
  variables = jax.eval_shape(lambda: net.init({'params': jax.random.key(0)}, jnp.zeros(shape),
                                              False))
  out = jax.eval_shape(lambda v: net.apply(v, jnp.zeros(shape), False), variables)
  return variables, out


@pytest.mark.parametrize('num_classes', sorted(TORCHVISION_PARAMETERS))
def test_deeplabv3_mobilenetv2_has_torchvisions_parameter_count(num_classes):
  net = MultiHeadNet(MobileNetV2(), {'classifier': DeepLabHead(num_classes)})
  variables, out = _shapes(net, (2, 64, 96, 3))
  assert sum(x.size for x in jax.tree.leaves(variables['params'])) == (
      TORCHVISION_PARAMETERS[num_classes])
  chex.assert_shape(out['classifier'], (2, 64, 96, num_classes))
  assert out['classifier'].dtype == jnp.float32
  chex.assert_shape(out['features'], (2, 320))
  _, features = _shapes(MobileNetV2(), (2, 64, 96, 3))
  chex.assert_shape(features.blocks[-1], (2, 4, 6, 320))  # output stride 16
  assert features.image_size == (64, 96)


def test_the_encoder_dilates_instead_of_striding_past_its_output_stride():
  for stride, expected in ((16, (1, 8, 8, 320)), (32, (1, 4, 4, 320))):
    _, out = _shapes(MobileNetV2(output_stride=stride), (1, 128, 128, 3))
    chex.assert_shape(out.blocks[-1], expected)
    chex.assert_shape(out.blocks[0], (1, 32, 32, 24))  # the stage ending at stride 4


def test_the_small_fcn_runs_and_trains_on_a_cpu():
  net = MultiHeadNet(SmallFCN(width=4), {'classifier': PixelClassifierHead(5)})
  x = jax.random.normal(jax.random.key(0), (2, 12, 10, 3))
  variables = net.init(jax.random.key(1), x, False)
  out, updates = net.apply(variables, x, True, mutable=['batch_stats'])
  chex.assert_shape(out['classifier'], (2, 12, 10, 5))
  chex.assert_tree_all_finite(out)
  assert 'batch_stats' in updates
