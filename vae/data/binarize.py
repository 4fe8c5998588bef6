"""Binarized MNIST, for comparison with the literature (the article trains on
continuous pixels): fixed thresholding, as in Chainer's VAE example, and
dynamic binarization, a fresh Bernoulli sample of every image at every epoch
(Burda et al. 2015), for which training wraps the continuous training images
in :class:`DynamicBinarized`.
"""
import warnings

import chainer
import numpy as np

#: Valid values of ``binarize`` other than ``None``.
BINARIZE_MODES = ('threshold', 'dynamic')


def binarize_images(images, mode, *, threshold=0.5, rng=None):
    """Binarizes pixel intensities in [0, 1].

    Args:
        images (numpy.ndarray): Pixels in [0, 1], any shape.
        mode (str): ``'threshold'``: 1 where ``pixel > threshold``;
            ``'dynamic'``: 1 with probability ``pixel`` (a Bernoulli sample).
        threshold (float): Cut-off for ``'threshold'``.
        rng: ``numpy.random.Generator``, or a seed for one, for ``'dynamic'``.

    Returns:
        numpy.ndarray: float32 array of 0s and 1s, same shape as ``images``.
    """
    images = np.asarray(images)
    if mode == 'threshold':
        return (images > threshold).astype(np.float32)
    if mode == 'dynamic':
        rng = np.random.default_rng(rng)
        # P(u < p) = p for u ~ U[0, 1).
        return (rng.random(images.shape, dtype=np.float32)
                < images).astype(np.float32)
    raise ValueError('mode must be one of %s, got %r'
                     % (', '.join(repr(m) for m in BINARIZE_MODES), mode))


class DynamicBinarized(chainer.dataset.DatasetMixin):
    """Images binarized afresh at every access (dynamic binarization).

    Each ``dataset[i]`` is a new Bernoulli sample with p = pixel, so an
    iterator over it sees a new binarization of every image at every epoch.
    Indexing with a slice, a list or an integer array draws all the samples
    in one vectorized call.

    The generator is copied into each worker of a
    :class:`chainer.iterators.MultiprocessIterator`, so the workers would
    draw alike; use a serial or multithread iterator.

    Args:
        images (numpy.ndarray): Continuous pixel intensities in [0, 1],
            shape (N, ...); already binary images draw no new samples.
        seed: Seed (or ``numpy.random.Generator``) of the samples; the same
            seed gives the same sequence of samples.
    """

    def __init__(self, images, seed=None):
        images = np.asarray(images)
        if images.ndim < 1 or not np.issubdtype(images.dtype, np.floating):
            raise ValueError('DynamicBinarized needs a float array of shape '
                             '(N, ...), got %s %r'
                             % (images.dtype, images.shape))
        if images.size and (images.min() < 0 or images.max() > 1):
            raise ValueError('DynamicBinarized needs pixel intensities in '
                             '[0, 1], got values in [%g, %g]'
                             % (images.min(), images.max()))
        if images.size and ((images == 0) | (images == 1)).all():
            warnings.warn('DynamicBinarized got images that are already '
                          'binary, so every sample will be the same; pass the '
                          'continuous pixels (load_mnist(binarize=None))')
        self.images = images
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        if isinstance(index, (slice, list, np.ndarray)):
            return list(self.get_examples(index))
        return self.get_example(index)

    def get_example(self, i):
        """A fresh binary sample of image ``i`` (float32, image shape)."""
        return binarize_images(self.images[i], 'dynamic', rng=self.rng)

    def get_examples(self, indices):
        """Fresh binary samples of several images in one draw.

        Args:
            indices (slice, list or numpy.ndarray): Which images.

        Returns:
            numpy.ndarray: float32, shape (len(indices), ...).
        """
        return binarize_images(self.images[indices], 'dynamic', rng=self.rng)
