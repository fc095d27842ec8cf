"""Data parallelism: 4 host CPU devices compute what 1 device computes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import REPO

SCRIPT = textwrap.dedent('''
    import jax, numpy as np
    assert jax.device_count() == 4, jax.devices()
    from jal import config_util, sharding, training
    from jal.models import ClassifierHead, MultiHeadNet, RotationHead, get_backbone
    from jal.strategies import pal

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 64).astype(np.int32)
    mean, std = np.full(1, .5, np.float32), np.full(1, .25, np.float32)
    cfg = config_util.train_config(batch_size=16, epochs=2, learning_rate=0.05, crop_pad=1)

    def run(devices):
      mesh = sharding.make_mesh(devices)
      model = MultiHeadNet(get_backbone('small_cnn', width=4),
                           {'classifier': ClassifierHead(3), 'rotation': RotationHead()})
      trainer = training.Trainer(model, cfg, pal.scoring_loss, mean, std, True, mesh, (8, 8, 1))
      imgs = jax.device_put(images, sharding.replicated(mesh))
      labs = jax.device_put(labels, sharding.replicated(mesh))
      state = trainer.init(jax.random.key(0))
      state, metrics = training.fit(trainer, state, imgs, labs, np.arange(40), epochs=2,
                                    rng=np.random.default_rng(1), key=jax.random.key(2))
      logits = trainer.predict(state.variables, imgs, np.arange(64),
                               lambda o: o['classifier'], 16)
      return jax.device_get(state.params), logits, metrics

    one = run(jax.devices()[:1])
    four = run(jax.devices())
    for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(four[0])):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(one[1], four[1], rtol=2e-4, atol=2e-4)
    assert abs(one[2]['loss'] - four[2]['loss']) < 1e-4
    print('AGREE')
''')


def test_four_devices_agree_with_one():
  env = dict(os.environ, XLA_FLAGS='--xla_force_host_platform_device_count=4',
             JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and 'AGREE' in result.stdout, result.stderr[-3000:]
