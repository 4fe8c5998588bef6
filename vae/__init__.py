"""chainer-vae: the VAE of "Variational Autoencoder徹底解説" (Qiita, 2017) in Chainer."""
from vae import _compat

_compat.apply()  # before anything below imports Chainer

from vae.model import ACTIVATIONS, VAE, Xavier  # NOQA: E402,F401

__all__ = ['ACTIVATIONS', 'VAE', 'Xavier']

__version__ = '0.1.0'
