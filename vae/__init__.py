"""chainer-vae: the VAE of "Variational Autoencoder徹底解説" (Qiita, 2017) in Chainer."""
from vae.initializers import Xavier  # NOQA
from vae.net import ACTIVATIONS, VAE  # NOQA

__version__ = '0.1.0'
