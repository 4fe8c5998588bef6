"""MNIST as the article uses it: pixels / 255 as float32 in [0, 1], (N, 784).

The data set is LeCun, Cortes & Burges, "The MNIST database of handwritten
digits" (http://yann.lecun.com/exdb/mnist/; LeCun et al. 1998, "Gradient-based
learning applied to document recognition"), in its original IDX files
(:mod:`vae.data.idx`).

:func:`load_mnist` looks for the data, in this order:

1. a folder the user names (``data_dir``; read only, never written);
2. Chainer's own cache, as left by ``chainer.datasets.get_mnist``;
3. this package's download cache, filled from a list of mirrors
   (:mod:`vae.data.download`).

Every source is checked against the sha256 of the uncompressed IDX payloads
(:data:`FILES`), so the arrays are the same whichever one served them.

The article trains on continuous pixels; ``binarize`` gives the variants of
:mod:`vae.data.binarize`.
"""
import logging
import os
import struct
import warnings
import zipfile
import zlib
from typing import NamedTuple

import chainer
import numpy as np

from vae.data.binarize import BINARIZE_MODES, binarize_images
from vae.data.download import download_from_mirrors, resolve_mirrors
from vae.data.idx import (IMAGES_MAGIC, LABELS_MAGIC, NOT_FOUND_HINT, SIDE,
                          SPLITS, MNISTError, MNISTFormatError,
                          MNISTNotFoundError, check_sha256, read_file)

logger = logging.getLogger(__name__)

# Where chainer.datasets.get_mnist caches train.npz / test.npz.
_CHAINER_CACHE_NAME = 'pfnet/chainer/mnist'


class Split(NamedTuple):
    """One split of MNIST."""

    #: (N, 784) float32 pixels in [0, 1] (or 0/1 when binarized).
    images: np.ndarray
    #: (N,) int32 digit labels 0..9.
    labels: np.ndarray


def load_mnist(data_dir=None, *, cache_dir=None, mirrors=None, download=True,
               binarize=None, threshold=0.5, seed=0, progress=True,
               splits=('train', 'test')):
    """Loads MNIST as ``(train, test)``, each a :class:`Split`.

    Args:
        data_dir (str): Folder holding the four IDX files, each gzipped
            (``train-images-idx3-ubyte.gz``) or not, also under the dotted
            names (``train-images.idx3-ubyte``). When given, it is the only
            source; it is never written to.
        cache_dir (str): Download cache. Defaults to
            ``<chainer dataset root>/chainer-vae/mnist``.
        mirrors (sequence of str): Base URLs to try in order; defaults to the
            ``VAE_MNIST_MIRRORS`` environment variable (comma-separated),
            else :data:`DEFAULT_MIRRORS`.
        download (bool): Fetch files missing from the caches.
        binarize (str): ``None`` keeps continuous pixels (the article);
            ``'threshold'`` maps pixels to ``pixel > threshold``;
            ``'dynamic'`` draws one Bernoulli sample per pixel, fixed by
            ``seed`` (to resample every epoch, wrap the continuous training
            images in :class:`DynamicBinarized` instead).
        threshold (float): Cut-off for ``binarize='threshold'``.
        seed (int): Seed of the sample for ``binarize='dynamic'``.
        progress (bool): Show a progress bar while downloading.
        splits: The splits to load and return, in this order: ``'train'``
            (60000 examples), ``'test'`` (10000). Only their files are read.

    Returns:
        tuple: one :class:`Split` per name in ``splits`` (by default
        ``(train, test)``): images (N, 784) float32, labels (N,) int32.

    Raises:
        MNISTNotFoundError: A file is missing from ``data_dir``, or no source
            could provide the data.
        MNISTChecksumError: A file in ``data_dir`` is not the MNIST file.
        MNISTFormatError: A file in ``data_dir`` is not a valid IDX file.
        ValueError: ``binarize`` is not one of the choices.
    """
    if binarize is not None and binarize not in BINARIZE_MODES:
        raise ValueError('binarize must be None or one of %s, got %r'
                         % (', '.join(repr(m) for m in BINARIZE_MODES),
                            binarize))
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise ValueError('splits must name some of %s, got %r'
                         % (', '.join(SPLITS), splits))
    if data_dir is not None:
        raw = _load_from_folder(data_dir, splits)
    else:
        raw = _load_from_chainer_cache(splits)
        if raw is None:
            if cache_dir is None:
                cache_dir = os.path.join(chainer.dataset.get_dataset_root(),
                                         'chainer-vae', 'mnist')
            raw = _load_from_download_cache(
                cache_dir, resolve_mirrors(mirrors), download, progress,
                splits)
    loaded = [_to_split(*raw[split]) for split in splits]
    if binarize == 'threshold':
        loaded = [
            Split(binarize_images(s.images, binarize, threshold=threshold),
                  s.labels) for s in loaded]
    elif binarize == 'dynamic':
        # each split from a generator of its own, so that a split's sample
        # does not depend on the other's size (scripts/train.py draws the
        # test sample alone and must get this one)
        loaded = [Split(binarize_images(s.images, binarize, rng=seed),
                        s.labels) for s in loaded]
    return tuple(loaded)


def _to_split(images, labels):
    """uint8 (N, 784) and (N,) arrays -> a float32/int32 :class:`Split`."""
    images = images.astype(np.float32)
    # Multiplying by the float32 of 1/255, as chainer.datasets.get_mnist
    # (the article's loader) does, gives its values bit for bit.
    images *= np.float32(1.0 / 255.0)
    return Split(images, labels.astype(np.int32))


def _pair(images, labels, source):
    """IDX arrays of one split -> (images (N, 784), labels (N,))."""
    if (images.ndim != 3 or images.shape[1:] != (SIDE, SIDE)
            or labels.shape != images.shape[:1]):
        raise MNISTFormatError('%s: images of shape %s do not match labels '
                               'of shape %s'
                               % (source, images.shape, labels.shape))
    return images.reshape(len(images), SIDE * SIDE), labels


def _files_of(splits):
    """The IDX file names of ``splits``."""
    return [name for split in splits for name in SPLITS[split][:2]]


def _load_from_folder(data_dir, splits):
    """Step 1: the files of ``splits`` from a user's folder (read only)."""
    found, missing = {}, []
    for name in _files_of(splits):
        dotted = name.replace('-idx', '.idx')  # t10k-images.idx3-ubyte
        candidates = [os.path.join(data_dir, base + ext)
                      for base in (name, dotted) for ext in ('.gz', '')]
        existing = [p for p in candidates if os.path.isfile(p)]
        if existing:
            found[name] = existing[0]
        else:
            missing.append('%s (looked for %s)'
                           % (name, ', '.join(candidates)))
    if missing:
        raise MNISTNotFoundError('MNIST files missing from %s: %s'
                                 % (data_dir, '; '.join(missing)))
    arrays = {name: read_file(path, name) for name, path in found.items()}
    logger.info('MNIST read from %s', data_dir)
    return {split: _pair(arrays[SPLITS[split][0]], arrays[SPLITS[split][1]],
                         data_dir) for split in splits}


def _load_from_chainer_cache(splits):
    """Step 2: Chainer's train.npz / test.npz, or None (with a warning if
    they exist but are not valid)."""
    directory = chainer.dataset.get_dataset_directory(
        _CHAINER_CACHE_NAME, create_directory=False)
    paths = {split: os.path.join(directory, split + '.npz')
             for split in splits}
    if not all(os.path.isfile(p) for p in paths.values()):
        return None
    try:
        raw = {split: _read_chainer_npz(paths[split], split)
               for split in splits}
    except (MNISTError, OSError, ValueError, KeyError, EOFError,
            zipfile.BadZipFile, zlib.error) as exc:
        warnings.warn("ignoring Chainer's MNIST cache in %s: %s: %s"
                      % (directory, type(exc).__name__, exc))
        return None
    logger.info("MNIST read from Chainer's cache in %s", directory)
    return raw


def _read_chainer_npz(path, split):
    images_name, labels_name, n = SPLITS[split]
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz['x'], npz['y']
    if (images.shape != (n, SIDE * SIDE) or images.dtype != np.uint8
            or labels.shape != (n,) or labels.dtype != np.uint8):
        raise MNISTFormatError(
            '%s: expected x uint8 %s and y uint8 %s, got x %s %s and y %s %s'
            % (path, (n, SIDE * SIDE), (n,), images.dtype, images.shape,
               labels.dtype, labels.shape))
    # Rebuilding the IDX payloads checks the arrays against FILES exactly.
    for key, name, header, array in (
            ('x', images_name,
             struct.pack('>4I', IMAGES_MAGIC, n, SIDE, SIDE), images),
            ('y', labels_name, struct.pack('>2I', LABELS_MAGIC, n), labels)):
        check_sha256(header + np.ascontiguousarray(array).tobytes(), name,
                      '%s (%r)' % (path, key))
    return images, labels


def _load_from_download_cache(cache_dir, mirrors, download, progress,
                              splits):
    """Step 3: verified files in ``cache_dir``, downloading missing ones."""
    arrays, missing = {}, []
    for name in _files_of(splits):
        path = os.path.join(cache_dir, name + '.gz')
        if os.path.isfile(path):
            try:
                arrays[name] = read_file(path, name)
                continue
            except MNISTError as exc:
                warnings.warn('ignoring invalid cached file: %s' % exc)
        missing.append(name)
    if missing and not download:
        raise MNISTNotFoundError(
            "MNIST not found: no valid copy in Chainer's cache (%s) and %s "
            'missing from the download cache, and download is off; %s'
            % (chainer.dataset.get_dataset_directory(
                _CHAINER_CACHE_NAME, create_directory=False),
               ', '.join(os.path.join(cache_dir, n + '.gz') for n in missing),
               NOT_FOUND_HINT))
    if missing:
        os.makedirs(cache_dir, exist_ok=True)
        unreachable = {}  # mirror -> connection error, not retried
        for name in missing:
            arrays[name] = download_from_mirrors(
                name, cache_dir, mirrors, unreachable, progress)
    logger.info('MNIST read from %s', cache_dir)
    return {split: _pair(arrays[SPLITS[split][0]], arrays[SPLITS[split][1]],
                         cache_dir) for split in splits}


