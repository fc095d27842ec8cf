"""VAAL (Sinha, Ebrahimi & Darrell, ICCV 2019); see `jal.strategies._vaal`."""

from jal.strategies import _vaal


class Strategy(_vaal.AdversarialStrategy):
  """A β-VAE and a latent discriminator; queries the lowest D."""
  conditioned = False
