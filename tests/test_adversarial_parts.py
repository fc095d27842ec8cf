"""Tests of the parts of VAAL, TA-VAAL and MAL: gradient reversal, the
adversarial losses, the VAE, the discriminators and the cosine classifier.

The references are NumPy transcriptions of the papers' equations, written with
explicit loops over examples, not from the JAX code.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jal.models import layers
from jal.objectives import adversarial
from jal.errors import JalError
from jal.models import Features
from jal.models import VAE, CosineClassifier, LatentDiscriminator, MLPDiscriminator

_RNG = np.random.default_rng(0)


def _log_sigmoid(x):
  # log(1 / (1 + e^-x)), written so that it does not overflow at |x| = 100.
  return -np.logaddexp(0.0, -x)


def _bce(logit, target):
  """-[y log D + (1 - y) log(1 - D)], D = sigmoid(logit); 1 - D = sigmoid(-logit)."""
  return -(target * _log_sigmoid(logit) + (1 - target) * _log_sigmoid(-logit))


def _mean_over_real(values, mask):
  real = [v for v, m in zip(values, mask) if m]
  return sum(real) / len(real) if real else 0.0


# --------------------------------------------------------------- gradient reversal


def test_gradient_reversal_is_the_identity_forward_and_flips_the_gradient():
  x = jnp.asarray(_RNG.normal(size=(3, 4)), jnp.float32)
  weights = jnp.asarray(_RNG.normal(size=(3, 4)), jnp.float32)
  chex.assert_trees_all_close(layers.gradient_reversal(x, 0.7), x)
  grad = jax.grad(lambda x: jnp.sum(weights * layers.gradient_reversal(x, 0.7)))(x)
  chex.assert_trees_all_close(grad, -0.7 * weights, rtol=1e-6)

  # A pytree; the leaves keep their dtype, and bfloat16 gradients stay bfloat16.
  tree = {'a': x, 'b': (jnp.ones(2, jnp.bfloat16),)}
  chex.assert_trees_all_equal(layers.gradient_reversal(tree, 2.0), tree)

  def loss(tree):
    reversed_tree = layers.gradient_reversal(tree, 2.0)
    return (jnp.sum(reversed_tree['a'] * weights)
            + jnp.sum(reversed_tree['b'][0].astype(jnp.float32) * 3))
  grads = jax.grad(loss)(tree)
  chex.assert_trees_all_close(grads['a'], -2.0 * weights, rtol=1e-6)
  assert grads['b'][0].dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(grads['b'][0], np.float32), -6.0)


def test_gradient_reversal_with_a_traced_scale_inside_a_composed_function():
  x = jnp.asarray(_RNG.normal(size=(5,)), jnp.float32)

  def composed(x, scale):
    # h(x) = sum(sin(R(x^2))): dh/dx = -scale * cos(x^2) * 2x.
    return jnp.sum(jnp.sin(layers.gradient_reversal(x ** 2, scale)))

  grad = jax.jit(jax.grad(composed, argnums=(0, 1)))
  for scale in (0.0, 0.3, 5.0):
    grad_x, grad_scale = grad(x, jnp.float32(scale))
    np.testing.assert_allclose(grad_x, -scale * np.cos(np.asarray(x) ** 2) * 2 * np.asarray(x),
                               rtol=1e-5, atol=1e-6)
    assert float(grad_scale) == 0.0  # the scale is not differentiated
  np.testing.assert_allclose(jax.jit(composed)(x, 1.0), np.sum(np.sin(np.asarray(x) ** 2)),
                             rtol=1e-6)


# ---------------------------------------------------------------------- VAE loss


def test_vae_loss_terms_match_the_equations_with_padding():
  x = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
  recon = _RNG.normal(size=(4, 3, 2, 2)).astype(np.float32)
  mu = _RNG.normal(size=(4, 3)).astype(np.float32)
  logvar = _RNG.normal(size=(4, 3)).astype(np.float32)
  x[3] = np.inf  # a padding row may hold anything
  mask = np.array([1, 1, 1, 0], np.float32)
  mse, kl = [], []
  for b in range(4):
    errors = [(x[b, h, w, c] - recon[b, h, w, c]) ** 2
              for h in range(3) for w in range(2) for c in range(2)]
    mse.append(sum(errors) / len(errors))
    # KL(N(mu, sigma^2) || N(0, 1)) = -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2).
    kl.append(-0.5 * sum(1 + logvar[b, j] - mu[b, j] ** 2 - math.exp(logvar[b, j])
                         for j in range(3)))
  got = jax.jit(adversarial.vae_loss_terms)(x, recon, mu, logvar, mask)
  assert set(got) == {'reconstruction', 'kl'}
  np.testing.assert_allclose(got['reconstruction'], _mean_over_real(mse, mask), rtol=1e-6)
  np.testing.assert_allclose(got['kl'], _mean_over_real(kl, mask), rtol=1e-6)
  # The posterior equal to the prior has KL 0; a perfect reconstruction has MSE 0.
  zero = adversarial.vae_loss_terms(x[:3], x[:3], np.zeros((3, 3)), np.zeros((3, 3)), np.ones(3))
  assert float(zero['reconstruction']) == 0.0 and float(zero['kl']) == 0.0
  with pytest.raises(JalError):
    adversarial.vae_loss_terms(x, recon[:, :2], mu, logvar, mask)
  with pytest.raises(JalError):
    adversarial.vae_loss_terms(x, recon, mu, logvar, mask[:3])


# ------------------------------------------------------------ discriminator losses


_LOGITS_L = np.array([2.0, -1.0, 100.0, -100.0, 0.3], np.float32)
_LOGITS_U = np.array([-100.0, 100.0, 0.0, 1.5], np.float32)
_MASK_L = np.array([1, 1, 1, 1, 0], np.float32)
_MASK_U = np.array([1, 1, 1, 0], np.float32)


def test_discriminator_and_vae_adversarial_losses_match_the_bce_equations():
  # TA-VAAL Eq. 6: -E_L[log D] - E_U[log(1 - D)]; Eq. 5: -E_L[log D] - E_U[log D].
  bce_mean = lambda logits, target, mask: _mean_over_real(
      [_bce(l, target) for l in logits.astype(np.float64)], mask)
  labeled_as_labeled = bce_mean(_LOGITS_L, 1.0, _MASK_L)
  unlabeled_as_unlabeled = bce_mean(_LOGITS_U, 0.0, _MASK_U)
  unlabeled_as_labeled = bce_mean(_LOGITS_U, 1.0, _MASK_U)
  args = (_LOGITS_L, _LOGITS_U, _MASK_L, _MASK_U)
  d_loss = jax.jit(adversarial.discriminator_loss)(*args)
  vae_loss = jax.jit(adversarial.vae_adversarial_loss)(*args)
  np.testing.assert_allclose(d_loss, labeled_as_labeled + unlabeled_as_unlabeled, rtol=1e-6)
  np.testing.assert_allclose(vae_loss, labeled_as_labeled + unlabeled_as_labeled, rtol=1e-6)
  # Logits of +-100: finite losses and gradients (a naive log(sigmoid) would give inf / NaN).
  for loss in (adversarial.discriminator_loss, adversarial.vae_adversarial_loss):
    grads = jax.grad(loss, argnums=(0, 1))(*args)
    assert all(np.isfinite(g).all() for g in grads)
    np.testing.assert_array_equal(grads[0][4], 0.0)  # padding gets no gradient
  # Bool masks work too, and no real example gives 0.
  np.testing.assert_allclose(adversarial.discriminator_loss(
      _LOGITS_L, _LOGITS_U, _MASK_L.astype(bool), _MASK_U.astype(bool)), d_loss, rtol=1e-6)
  no_real = (_LOGITS_L, _LOGITS_U, np.zeros(5), np.zeros(4))
  assert float(adversarial.discriminator_loss(*no_real)) == 0.0
  with pytest.raises(JalError):
    adversarial.discriminator_loss(_LOGITS_L[:, None], _LOGITS_U, _MASK_L, _MASK_U)


def test_discriminator_accuracy_and_means():
  # Real labeled logits 2, -1, 100, -100: 2 right (> 0). Real unlabeled -100, 100, 0:
  # 2 right (<= 0). Pooled: 4 / 7.
  args = (_LOGITS_L, _LOGITS_U, _MASK_L, _MASK_U)
  np.testing.assert_allclose(jax.jit(adversarial.discriminator_accuracy)(*args), 4 / 7, rtol=1e-6)
  sigmoid = lambda v: 1 / (1 + math.exp(-v))
  means = jax.jit(adversarial.discriminator_means)(*args)
  np.testing.assert_allclose(means['labeled'],
                             _mean_over_real([sigmoid(l) for l in _LOGITS_L], _MASK_L), rtol=1e-6)
  np.testing.assert_allclose(means['unlabeled'],
                             _mean_over_real([sigmoid(l) for l in _LOGITS_U], _MASK_U), rtol=1e-6)
  no_real = (_LOGITS_L, _LOGITS_U, np.zeros(5), np.zeros(4))
  assert float(adversarial.discriminator_accuracy(*no_real)) == 0.0


# -------------------------------------------------------------- minimax entropy


def test_minimax_entropy_matches_shannon_entropy_and_is_nan_free():
  logits = np.concatenate([
      _RNG.normal(size=(3, 4)) * 3,
      [[100.0, -100.0, -100.0, -100.0]],  # p = (1, 0, 0, 0): entropy 0
      [[100.0, 100.0, -100.0, -100.0]],   # two classes at 1/2: log 2
      np.zeros((1, 4)),                   # uniform: log 4
  ]).astype(np.float32)
  mask = np.array([1, 1, 1, 1, 1, 1], np.float32)
  entropies = []
  for row in logits.astype(np.float64):
    e = np.exp(row - row.max())
    p = e / e.sum()
    # Eq. 2 of paper 003: -sum_k p_k log p_k, with 0 log 0 = 0.
    entropies.append(-sum(p_k * math.log(p_k) for p_k in p if p_k > 0))
  np.testing.assert_allclose(entropies[3:], [0.0, math.log(2), math.log(4)], atol=1e-12)
  got = jax.jit(adversarial.minimax_entropy)(logits, mask)
  np.testing.assert_allclose(got, np.mean(entropies), rtol=1e-5)
  np.testing.assert_allclose(adversarial.minimax_entropy(logits), got, rtol=1e-6)
  padded = np.array([1, 0, 1, 0, 1, 0], np.float32)
  np.testing.assert_allclose(adversarial.minimax_entropy(logits, padded),
                             _mean_over_real(entropies, padded), rtol=1e-5)
  grad = jax.grad(adversarial.minimax_entropy)(logits, padded)
  assert np.isfinite(grad).all()
  np.testing.assert_array_equal(grad[1], 0.0)
  with pytest.raises(JalError):
    adversarial.minimax_entropy(logits[0])


# ----------------------------------------------------------------------------- VAE


# Keys for the VAE tests: compiling a jitted `init` of the VAE with the default
# threefry keys takes about 7 s on a CPU (one threefry per parameter), with
# 'rbg' keys about 1 s; the values do not matter here.
_key = lambda seed: jax.random.key(seed, impl='rbg')


@pytest.mark.parametrize('image_shape', [(32, 32, 3), (28, 28, 1)])
def test_vae_shapes_and_sampling(image_shape):
  model = VAE(z_dim=3, width=4, image_shape=image_shape)
  x = jnp.asarray(_RNG.normal(size=(2, *image_shape)), jnp.float32)
  variables = jax.jit(lambda k: model.init(k, x, False))(_key(0))

  @jax.jit
  def run(variables, x, key1, key2):
    deterministic = model.apply(variables, x, False)
    decoded_mean = model.apply(variables, deterministic[1], False, method=VAE.decode)
    sampled = [model.apply(variables, x, False, rngs={'sample': k}) for k in (key1, key2, key1)]
    return deterministic, decoded_mean, sampled

  (recon, mu, logvar), decoded_mean, (first, second, again) = run(variables, x, _key(1), _key(2))
  chex.assert_shape(recon, (2, *image_shape))
  chex.assert_shape((mu, logvar), (2, 3))
  chex.assert_type((recon, mu, logvar), jnp.float32)
  # Without a 'sample' stream z = mu: the reconstruction is the decoder of mu.
  chex.assert_trees_all_close(decoded_mean, recon, atol=1e-5)
  # With one, z = mu + exp(logvar / 2) eps is random (per key); mu and logvar are not.
  chex.assert_trees_all_close(first[1:], (mu, logvar), atol=1e-6)
  assert not np.allclose(first[0], second[0], atol=1e-4)
  assert not np.allclose(first[0], recon, atol=1e-4)
  chex.assert_trees_all_close(again, first)


def test_vae_training_mode_updates_batch_statistics_and_the_condition_is_used():
  model = VAE(z_dim=3, width=4, image_shape=(16, 16, 2))
  x = jnp.asarray(_RNG.normal(size=(3, 16, 16, 2)), jnp.float32)
  rank = jnp.array([[0.1], [0.5], [0.9]])
  variables = jax.jit(lambda k: model.init(k, x, False, rank))(_key(0))

  @jax.jit
  def run(variables, x):
    low = model.apply(variables, x, False, jnp.zeros((3, 1)))
    high = model.apply(variables, x, False, jnp.ones((3, 1)))
    return low, high, model.apply(variables, x, True, rank, mutable=['batch_stats'])

  low, high, ((recon, _, _), updates) = run(variables, x)
  chex.assert_trees_all_close(low[1:], high[1:])  # the encoder does not see r
  assert not np.allclose(low[0], high[0], atol=1e-5)  # the decoder does (TA-VAAL Eq. 4)
  chex.assert_shape(recon, (3, 16, 16, 2))
  assert set(updates['batch_stats']) == {'encoder', 'decoder'}
  assert not np.allclose(updates['batch_stats']['encoder']['bn1']['mean'],
                         variables['batch_stats']['encoder']['bn1']['mean'])
  # Shape errors are raised while tracing, before anything runs.
  with pytest.raises(JalError):
    jax.eval_shape(lambda v: model.apply(v, x, False, jnp.ones((2, 1))), variables)
  with pytest.raises(JalError):
    jax.eval_shape(lambda v: model.apply(v, x[:, :8], False, rank), variables)
  with pytest.raises(JalError):
    jax.eval_shape(lambda k: VAE(image_shape=(8, 8, 1)).init(k, jnp.zeros((1, 8, 8, 1)), False),
                   _key(0))


# ----------------------------------------------------------------- discriminators


def _param_count(variables):
  return sum(leaf.size for leaf in jax.tree.leaves(variables['params']))


def test_latent_discriminator_shapes_depth_and_condition():
  z = jnp.asarray(_RNG.normal(size=(4, 3)), jnp.float32)
  plain = LatentDiscriminator(width=8)
  variables = plain.init(jax.random.key(0), z)
  logits = jax.jit(plain.apply)(variables, z)
  chex.assert_shape(logits, (4,))
  chex.assert_type(logits, jnp.float32)
  # Linear(3, 8)-ReLU-Linear(8, 8)-ReLU-Linear(8, 1); each extra hidden layer adds 8 x 8 + 8.
  assert _param_count(variables) == (3 * 8 + 8) + (8 * 8 + 8) + (8 + 1)
  deep = LatentDiscriminator(width=8, num_hidden=4)
  assert _param_count(deep.init(jax.random.key(0), z)) == _param_count(variables) + 2 * (8 * 8 + 8)

  conditioned = LatentDiscriminator(width=8)
  variables = conditioned.init(jax.random.key(0), z, jnp.zeros((4, 1)))
  apply = jax.jit(conditioned.apply)
  low, high = apply(variables, z, jnp.zeros((4, 1))), apply(variables, z, jnp.ones((4, 1)))
  chex.assert_shape(low, (4,))
  assert not np.allclose(low, high, atol=1e-6)  # D(r, z) reads r (TA-VAAL Eq. 3)
  with pytest.raises(JalError):
    apply(variables, z, jnp.ones((4,)))


def test_mal_discriminator_shapes_and_stop_gradient():
  features = jnp.asarray(_RNG.normal(size=(4, 6)), jnp.float32)
  model = MLPDiscriminator(width=8)
  variables = model.init(jax.random.key(0), features)
  assert _param_count(variables) == (6 * 8 + 8) + (8 * 8 + 8) + (8 + 1)  # three layers
  logits = jax.jit(model.apply)(variables, features)
  chex.assert_shape(logits, (4,))
  # A backbone's Features work as the input (a MultiHeadNet head).
  chex.assert_trees_all_close(model.apply(variables, Features(pooled=features, blocks=())), logits)
  grad = lambda stop: jax.grad(lambda f: jnp.sum(model.apply(variables, f, stop_gradient=stop)))(
      features)
  assert np.abs(grad(False)).sum() > 0
  np.testing.assert_array_equal(grad(True), 0.0)


# ------------------------------------------------------------------ cosine classifier


def _reference_cosine_logits(features, kernel, temperature, normalize_weights):
  """Eq. 1 of paper 003: logit_k = w_k . f / (||f|| T)."""
  batch, dim = features.shape
  logits = np.zeros((batch, kernel.shape[1]))
  for b in range(batch):
    norm_f = math.sqrt(sum(features[b, d] ** 2 for d in range(dim)))
    for k in range(kernel.shape[1]):
      w = kernel[:, k] / (np.sqrt(np.sum(kernel[:, k] ** 2)) if normalize_weights else 1.0)
      logits[b, k] = sum(w[d] * features[b, d] for d in range(dim)) / (norm_f * temperature)
  return logits


@pytest.mark.parametrize('normalize_weights', [False, True])
def test_cosine_classifier_matches_eq1_and_normalises(normalize_weights):
  features = jnp.asarray(_RNG.normal(size=(4, 6)), jnp.float32)
  model = CosineClassifier(num_classes=5, temperature=0.1, normalize_weights=normalize_weights)
  variables = model.init(jax.random.key(0), features)
  apply = jax.jit(model.apply)
  logits = apply(variables, features)
  chex.assert_shape(logits, (4, 5))
  chex.assert_type(logits, jnp.float32)
  kernel = np.asarray(variables['params']['kernel'], np.float64)
  chex.assert_shape(kernel, (6, 5))
  np.testing.assert_allclose(
      logits, _reference_cosine_logits(np.asarray(features, np.float64), kernel, 0.1,
                                       normalize_weights), rtol=1e-5, atol=1e-5)
  # Scaling the features by any positive constant leaves the logits unchanged.
  for scale in (1e-3, 0.5, 7.0, 1e3):
    np.testing.assert_allclose(apply(variables, features * scale), logits, rtol=1e-5, atol=1e-5)
  # Logits scale as 1 / T.
  for temperature in (1.0, 0.05):
    other = CosineClassifier(num_classes=5, temperature=temperature,
                             normalize_weights=normalize_weights)
    np.testing.assert_allclose(other.apply(variables, features), logits * 0.1 / temperature,
                               rtol=1e-5, atol=1e-5)
  if normalize_weights:  # true cosines: |logit| <= 1 / T
    assert np.abs(logits).max() <= 1 / 0.1 + 1e-4
  # Features input, as a MultiHeadNet head; a zero feature vector gives finite logits
  # and gradients.
  chex.assert_trees_all_close(model.apply(variables, Features(pooled=features, blocks=())), logits)
  zero = jnp.zeros((1, 6))
  assert np.isfinite(model.apply(variables, zero)).all()
  assert np.isfinite(jax.grad(lambda f: jnp.sum(model.apply(variables, f)))(zero)).all()


def test_subpixel_transposed_convolution_equals_flax_conv_transpose():
  """`ConvTranspose4x4` is PyTorch's ConvTranspose2d(4, 2, 1): the same
  parameters, outputs and kernel gradients as the flax transposed form."""
  import flax.linen as nn
  from jal.models.vae import ConvTranspose4x4
  x = jax.random.normal(jax.random.key(0), (2, 5, 7, 3))
  reference = nn.ConvTranspose(4, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)),
                               use_bias=False)
  variables = reference.init(jax.random.key(1), x)
  chex.assert_trees_all_equal(variables, ConvTranspose4x4(4).init(jax.random.key(1), x))
  loss = lambda module: lambda v: jnp.sum(jnp.sin(module.apply(v, x)))
  chex.assert_trees_all_close(ConvTranspose4x4(4).apply(variables, x),
                              reference.apply(variables, x), atol=1e-5)
  chex.assert_trees_all_close(jax.grad(loss(ConvTranspose4x4(4)))(variables),
                              jax.grad(loss(reference))(variables), atol=1e-4)
  assert ConvTranspose4x4(4).apply(variables, x).shape == (2, 10, 14, 4)
