"""Helpers shared by the tests of several modules: NumPy references of the papers' equations, tiny
networks, image files in memory, the names of the baseline strategies and the initial-pool setup.
Tests import them under the names they use (`from helpers import softmax as _softmax`); fixtures
live in the conftest.py files."""

from __future__ import annotations

import io
import os
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from conftest import tiny_config
from jal import checkpoint, experiment, initial_pools, rng, train
from jal.models import ClassifierHead, LossPredictionHead, MultiHeadNet, RotationHead, get_backbone
from jal.pool import Pool
from jal.strategies import base


# -------------------------------------------------------------------- NumPy references


def softmax(z):
  z = np.asarray(z, np.float64)
  with np.errstate(invalid='ignore'):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
  return e / e.sum(axis=-1, keepdims=True)


def reference_self_supervision_score(rotation_logits: np.ndarray) -> np.ndarray:
  """Eq. 1: S_S(x) = -sum_{i in 0..3} g(rot90_i(x))_i, with g the softmax output."""
  _, batch, _ = rotation_logits.shape
  out = np.zeros(batch)
  for b in range(batch):
    total = 0.0
    for i in range(4):
      total += softmax(rotation_logits[i, b])[i]
    out[b] = -total
  return out


def reference_classification_score(logits: np.ndarray) -> np.ndarray:
  """Eq. 3: S_C(x) = -KL(U || h(x)) = -sum_c (1/C) log((1/C) / h_c)."""
  batch, num_classes = logits.shape
  out = np.zeros(batch)
  for b in range(batch):
    h = softmax(logits[b])
    kl = sum((1.0 / num_classes) * np.log((1.0 / num_classes) / h[c]) for c in range(num_classes))
    out[b] = -kl
  return out


# The JAX code works in float32; the reference in float64. Their picks can
# only differ where two points' distances are within float32 rounding (about
# 1e-7 relative), so every fixture checks that the reference's argmax wins by
# more than this, except for exact ties (duplicated points).
MIN_RELATIVE_GAP = 1e-5


def reference_k_center_greedy(points: np.ndarray, centers: np.ndarray, k: int):
  """Algorithm 1 of Sener & Savarese, with ties to the lowest index.

  ``u = argmax_{i in [n] \\ s} min_{j in s} Delta(x_i, x_j)``, ``s = s ∪ {u}``,
  ``k`` times, from ``s`` = the centers. With ``s`` empty the minimum is
  ``+inf`` for every point, so the first pick is point 0.

  Returns:
    The picks, int ``[k]``, and the smallest relative margin by which an
    argmax beat the best value strictly below it (exact ties excluded).
  """
  x = np.asarray(points, np.float64)
  s = [c for c in np.asarray(centers, np.float64)]
  chosen = np.zeros(len(x), bool)
  picks, smallest_gap = [], np.inf
  for _ in range(k):
    if s:
      dist = np.sqrt(((x[:, None, :] - np.stack(s)[None, :, :]) ** 2).sum(-1)).min(axis=1)
    else:
      dist = np.full(len(x), np.inf)
    dist[chosen] = -np.inf
    u = int(np.argmax(dist))
    below = dist[dist < dist[u]]
    if np.isfinite(dist[u]) and dist[u] > 0 and below.size and np.isfinite(below.max()):
      smallest_gap = min(smallest_gap, (dist[u] - below.max()) / dist[u])
    picks.append(u)
    chosen[u] = True
    s.append(x[u])
  return np.asarray(picks), smallest_gap


# ----------------------------------------------------------------------- tiny networks

TINY_WIDTH = 4
NUM_CLASSES = 10


def tiny_net(name: str, width: int | None = TINY_WIDTH, dtype=jnp.float32) -> MultiHeadNet:
  return MultiHeadNet(
      backbone=get_backbone(name, width=width, dtype=dtype),
      heads={'classifier': ClassifierHead(NUM_CLASSES), 'rotation': RotationHead()},
  )


def init_variables(model, *args, seed: int = 0, **kwargs):
  """``model.init(key, *args, **kwargs)``, compiled, from an ``rbg`` key of ``seed``.

  As the library initialises (`jal.rng.init_key`): XLA:CPU compiles an
  initialiser several times faster from ``rbg`` keys than from threefry keys.
  """
  return jax.jit(lambda key: model.init({'params': rng.init_key(key)}, *args, **kwargs))(
      jax.random.key(seed))


def normal_images(shape, seed=0) -> jax.Array:
  return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def dropout_net(last_layer=False):
  backbone = get_backbone('small_cnn', width=4, dropout_rate=0.0 if last_layer else 0.3)
  head = ClassifierHead(3, dropout_rate=0.3 if last_layer else 0.0)
  return MultiHeadNet(backbone, {'classifier': head})


def loss_prediction_net():
  return MultiHeadNet(get_backbone('small_cnn', width=4),
                      {'classifier': ClassifierHead(3), 'loss_prediction': LossPredictionHead(8)})


# ------------------------------------------------------------- strategies on fixed tables


class TableTask:
  """A stand-in task model whose network outputs are fixed float32 tables, one row per pool
  index (``TableTask(classifier=logits, features=features)``): ``predict`` applies ``fn`` to
  the rows of ``indices`` as `jal.strategies.base.TaskModel.predict` applies it to the network's outputs.
  A float32 table is kept by reference, so a test may change a row afterwards."""

  def __init__(self, **outputs):
    self.outputs = {name: np.asarray(table, np.float32) for name, table in outputs.items()}

  def predict(self, images, indices, fn, on_device=False):
    out = fn({name: jnp.asarray(table[indices]) for name, table in self.outputs.items()})
    return out if on_device else jax.tree.map(np.asarray, out)


def one_query_without_transfers(strategy: str, workdir: str) -> list[dict]:
  """Two rounds of `tiny_config(strategy)` through `jal.experiment.run` under
  ``jax.transfer_guard('disallow')`` (every host-device transfer explicit), checking that the
  query labeled 20 distinct examples outside the initial pool. Returns the records."""
  with jax.transfer_guard('disallow'):
    records = experiment.run(tiny_config(strategy), workdir)
  assert [r['query_size'] for r in records] == [20, 0]
  assert [r['num_labeled'] for r in records] == [30, 50]
  labeled = checkpoint.Checkpointer(os.path.join(workdir, 'checkpoints')).latest().pool.labeled
  initial, query = labeled[:30], labeled[30:]
  assert query.size == 20 and np.unique(query).size == 20
  assert not np.isin(query, initial).any()
  return records


def table_context(config, data, task, candidates, labeled, num_train, round_=0, mesh=None):
  """A round's `RoundContext` over ``task``'s tables: ``labeled`` answered with class 0."""
  labeled = np.asarray(labeled, np.int64)
  pool = Pool(num_train=num_train, labeled=labeled, oracle_labels=np.zeros(labeled.size, np.int32))
  return base.RoundContext(config=config, data=data, round=round_, pool=pool, images=None,
                           labels=None, candidates=np.asarray(candidates), task=task, mesh=mesh)


# ------------------------------------------------------------------------- image files


def png_bytes(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(array).save(buf, format="PNG")
  return buf.getvalue()


def image_for(seed: int, size=(6, 5), grey=False) -> np.ndarray:
  rng = np.random.default_rng(seed)
  shape = size if grey else size + (3,)
  return rng.integers(0, 256, shape, dtype=np.uint8)


def build_folder(files: dict[str, bytes], root, as_zip: bool) -> str:
  """Writes {relative path: bytes} as a directory or a zip; returns its path."""
  if as_zip:
    path = str(root) + ".zip"
    with zipfile.ZipFile(path, "w") as z:
      for name, blob in files.items():
        z.writestr(name, blob)
    return path
  for name, blob in files.items():
    full = os.path.join(root, name)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "wb") as f:
      f.write(blob)
  return str(root)


def split_folder(grey=False, size=(6, 5), prefix=""):
  """train/test x 3 classes (given out of alphabetical order); returns (files, expected)."""
  files, expected = {}, {"train": [], "test": []}
  seed = 0
  for split, per_class in (("train", 3), ("test", 2)):
    for cls in ("zebra", "ant", "moth"):
      for i in range(per_class):
        img = image_for(seed, size, grey)
        seed += 1
        files[f"{prefix}{split}/{cls}/img_{i}.png"] = png_bytes(img)
        expected[split].append((cls, i, img))
  return files, expected


def tfds_must_not_run(*args, **kwargs):
  raise RuntimeError("offline in this test")


# -------------------------------------------------------------------------- strategies

BASELINES = ['least_confidence', 'margin', 'bald', 'dbal', 'bald_last_layer', 'dbal_last_layer',
             'ensemble_varratio', 'ensemble_entropy', 'ensemble_least_confidence',
             'ensemble_margin', 'learning_loss', 'learning_loss_v2']


# ----------------------------------------------------------------------- initial pools

SIZE = 20
EXCLUDED = (0, 1)


def initial_pool_config(name='random', seed=0, **settings):
  config = tiny_config('random', **{'dataset.image_size': 16, 'dataset.max_train': 200,
                                    'seed': seed})
  settings_train = dict(epochs=1, batch_size=32, learning_rate=2e-3)
  config.initial_pool = initial_pools.default_config(
      name=name, size=SIZE, exclude_classes=EXCLUDED, kmeans_n_init=2,
      ssl_model=dict(name='small_cnn', width=4, dtype='float32'),
      ssl_train=train.train_config(optimizer='adam', weight_decay=0.0, momentum=0.0,
                                   crop_pad=0, **settings_train),
      vae=dict(z_dim=4, width=2, dtype='float32'),
      vae_train=train.train_config(optimizer='adam', weight_decay=0.0, momentum=0.0,
                                   crop_pad=0, **settings_train),
      simclr=dict(projection_dim=8, temperature=0.5),
      simclr_train=train.train_config(optimizer='adam', weight_decay=0.0, momentum=0.0,
                                      crop_pad=0, **settings_train),
      **settings)
  return config


def eligible_indices(config, dataset):
  """What the loop passes: the train indices outside the excluded classes."""
  exclude = np.asarray(tuple(config.initial_pool.get('exclude_classes', ())), np.int64)
  return np.flatnonzero(~np.isin(dataset.train_labels, exclude))


def select_pool(config, dataset, mesh, size):
  return initial_pools.select_initial_pool(config, dataset.pool_data(), mesh, size,
                                           eligible_indices(config, dataset))


# Real scorer results by (scorer, key, settings), and the arguments of each call.
TRAINED: dict = {}
REAL_SCORERS = {'rotation': initial_pools.rotation_losses, 'vae': initial_pools.vae_losses,
                'simclr': initial_pools.simclr_features}


def _memo_key(kind, key, kwargs):
  return (kind, jax.random.key_data(key).tobytes(),
          repr(sorted((k, str(v)) for k, v in kwargs.items())))


def memoized_scorer(kind):
  def scorer(dataset, mesh, *, key, **kwargs):
    entry = _memo_key(kind, key, kwargs)
    if entry not in TRAINED:
      TRAINED[entry] = (REAL_SCORERS[kind](dataset, mesh, key=key, **kwargs), key, kwargs)
    return TRAINED[entry][0]
  return scorer


def recorded(kind):
  return next(value for entry, value in TRAINED.items() if entry[0] == kind)
