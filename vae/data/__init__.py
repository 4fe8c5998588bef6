"""The MNIST data: the verified loader (:mod:`~vae.data.mnist`: a folder,
Chainer's cache or a download), the IDX format and its checks
(:mod:`~vae.data.idx`), the mirrors (:mod:`~vae.data.download`) and
binarization (:mod:`~vae.data.binarize`)."""
from vae.data.binarize import (  # NOQA: F401
    BINARIZE_MODES, DynamicBinarized, binarize_images)
from vae.data.idx import (  # NOQA: F401
    EXTRA_SHA256_ENV, FILES, N_PIXELS, MNISTChecksumError, MNISTError,
    MNISTFormatError, MNISTNotFoundError, parse_idx)
from vae.data.mnist import Split, load_mnist  # NOQA: F401

__all__ = ['BINARIZE_MODES', 'DynamicBinarized', 'EXTRA_SHA256_ENV', 'FILES',
           'MNISTChecksumError', 'MNISTError', 'MNISTFormatError',
           'MNISTNotFoundError', 'N_PIXELS', 'Split', 'binarize_images',
           'load_mnist', 'parse_idx']
