"""Data parallelism: 8 host CPU devices compute what 1 device computes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from conftest import REPO, xla_flags

SCRIPT = textwrap.dedent('''
    import jax, numpy as np
    assert jax.device_count() == 8, jax.devices()
    from jal import sharding, train
    from jal.data import ImageSpec
    from jal.models import ClassifierHead, MultiHeadNet, RotationHead, get_backbone
    from jal.objectives import pretext

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8)
    labels = rng.integers(0, 3, 64).astype(np.int32)
    mean, std = np.full(1, .5, np.float32), np.full(1, .25, np.float32)
    cfg = train.train_config(batch_size=16, epochs=2, learning_rate=0.05, crop_pad=1)

    def run(devices):
      mesh = sharding.make_mesh(devices)
      model = MultiHeadNet(get_backbone('small_cnn', width=4),
                           {'classifier': ClassifierHead(3), 'rotation': RotationHead()})
      trainer = train.Trainer(model, pretext.scoring_loss, cfg, ImageSpec((8, 8, 1), mean, std, True),
                              mesh)
      imgs = jax.device_put(images, sharding.replicated(mesh))
      labs = jax.device_put(labels, sharding.replicated(mesh))
      state = trainer.init(jax.random.key(0))
      state, metrics = train.fit(trainer, state, imgs, labs, np.arange(40), epochs=2,
                                 key=jax.random.key(2))
      logits = trainer.predict(state.variables, imgs, np.arange(64),
                               lambda o: o['classifier'], 16)
      return jax.device_get(state.params), logits, metrics

    one = run(jax.devices()[:1])
    eight = run(jax.devices())
    for a, b in zip(jax.tree.leaves(one[0]), jax.tree.leaves(eight[0])):
      np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    np.testing.assert_allclose(one[1], eight[1], rtol=2e-4, atol=2e-4)
    assert abs(one[2]['loss'] - eight[2]['loss']) < 1e-4
    print('AGREE')
''')


def test_eight_devices_agree_with_one():
  env = dict(os.environ, XLA_FLAGS=xla_flags('--xla_force_host_platform_device_count=8'),
             JAX_PLATFORMS='cpu')
  result = subprocess.run([sys.executable, '-c', SCRIPT], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0 and 'AGREE' in result.stdout, result.stderr[-3000:]


# One epoch per network and 150 images: PAL's task model, scoring network and fine-tuned
# copy still run on the two processes' mesh, with fewer of the slow cross-process (gloo)
# steps.
TWO_PROCESS_SETTINGS = {'train.epochs': 1, 'strategy.pal.scoring_train.epochs': 1,
                        'dataset.max_train': 150, 'dataset.max_test': 50}

MULTI_PROCESS = textwrap.dedent('''
    import json, sys
    import jax
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    port, pid, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(f'localhost:{port}', num_processes=2, process_id=pid)
    assert (jax.process_count(), jax.device_count(), jax.local_device_count()) == (2, 4, 2)
    sys.path.insert(0, 'tests')
    from conftest import strip_timings, tiny_config
    from test_sharding import TWO_PROCESS_SETTINGS
    from jal import experiment
    records = experiment.run(tiny_config('pal', **TWO_PROCESS_SETTINGS), workdir)
    print('RECORDS', json.dumps(strip_timings(records)))
''')


def test_two_processes_agree_with_one(tmp_path):
  """Multi-host through jax.distributed: 2 processes x 2 CPU devices, one mesh."""
  import json
  import socket
  from conftest import strip_timings, tiny_config
  from jal import experiment
  with socket.socket() as s:
    s.bind(('localhost', 0))
    port = str(s.getsockname()[1])
  env = dict(os.environ, XLA_FLAGS=xla_flags('--xla_force_host_platform_device_count=2'),
             JAX_PLATFORMS='cpu')
  procs = [subprocess.Popen([sys.executable, '-c', MULTI_PROCESS, port, str(pid),
                             str(tmp_path / f'process{pid}')], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for pid in (0, 1)]
  outputs = [p.communicate(timeout=300) for p in procs]
  for p, (out, err) in zip(procs, outputs):
    assert p.returncode == 0 and 'RECORDS' in out, err[-3000:]
  expected = strip_timings(experiment.run(tiny_config('pal', **TWO_PROCESS_SETTINGS),
                                          str(tmp_path / 'single')))
  for out, _ in outputs:
    got = json.loads(out.split('RECORDS', 1)[1])
    assert [r['query_class_counts'] for r in got] == [r['query_class_counts'] for r in expected]
    for a, b in zip(got, expected):
      assert abs(a['test_accuracy'] - b['test_accuracy']) <= 0.02
      assert abs(a['train_loss'] - b['train_loss']) < 1e-3
