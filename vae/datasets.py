"""MNIST as the article uses it: pixels / 255 as float32 in [0, 1], (N, 784).

The data set is LeCun, Cortes & Burges, "The MNIST database of handwritten
digits" (http://yann.lecun.com/exdb/mnist/; LeCun et al. 1998, "Gradient-based
learning applied to document recognition"), in its original IDX files: a
big-endian header (magic number 2051 for images, 2049 for labels, then one
32-bit size per dimension) followed by the uint8 payload.

:func:`load_mnist` looks for the data, in this order:

1. a folder the user names (``data_dir``; read only, never written);
2. Chainer's own cache, as left by ``chainer.datasets.get_mnist``;
3. this package's download cache, filled from a list of mirrors.

Every source is checked against the sha256 of the uncompressed IDX payloads
(:data:`FILES`), so the arrays are the same whichever one served them.

The article trains on continuous pixels. Binarized variants are here for
comparison with the literature: fixed thresholding (as in Chainer's VAE
example) and dynamic binarization (a fresh Bernoulli sample of every image at
every epoch, as in Burda et al. 2015), for which training code wraps the
continuous training images in :class:`DynamicBinarized`.
"""
import gzip
import hashlib
import http.client
import json
import logging
import math
import os
import struct
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from typing import NamedTuple

import chainer
import numpy as np
from tqdm import tqdm

logger = logging.getLogger(__name__)

#: Base URLs tried in order; a file's URL is the base plus ``<name>.gz``.
DEFAULT_MIRRORS = (
    'https://ossci-datasets.s3.amazonaws.com/mnist/',
    'https://storage.googleapis.com/cvdf-datasets/mnist/',
    'http://yann.lecun.com/exdb/mnist/',
)

#: Environment variable holding a comma-separated list of mirrors that
#: replaces :data:`DEFAULT_MIRRORS`.
MIRRORS_ENV = 'VAE_MNIST_MIRRORS'

#: Seconds a mirror may stay silent before it counts as failed.
DOWNLOAD_TIMEOUT = 30

#: The four canonical file names (without ``.gz``) and the sha256 of each
#: uncompressed IDX payload. Gzip streams differ between mirrors; these do not.
FILES = {
    'train-images-idx3-ubyte':
        'ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db',
    'train-labels-idx1-ubyte':
        '65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5',
    't10k-images-idx3-ubyte':
        '0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7',
    't10k-labels-idx1-ubyte':
        'ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2',
}

#: Environment variable naming a JSON file ``{file name: sha256}`` of a
#: stand-in data set in MNIST's format and sizes (the test suite's synthetic
#: MNIST) whose payloads are accepted besides the real ones of :data:`FILES`.
EXTRA_SHA256_ENV = 'VAE_MNIST_EXTRA_SHA256'

#: Valid values of ``binarize`` other than ``None``.
BINARIZE_MODES = ('threshold', 'dynamic')

_IMAGES_MAGIC = 2051
_LABELS_MAGIC = 2049
_SIDE = 28
#: Pixels in an image, as the loader returns it flat.
N_PIXELS = _SIDE * _SIDE
# split -> (images file, labels file, number of examples)
_SPLITS = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 60000),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 10000),
}
# file name -> number of examples
_EXAMPLES = {name: n for images, labels, n in _SPLITS.values()
             for name in (images, labels)}
# Where chainer.datasets.get_mnist caches train.npz / test.npz.
_CHAINER_CACHE_NAME = 'pfnet/chainer/mnist'
_NOT_FOUND_HINT = ('pass data_dir (--data-dir in the scripts) pointing to a '
                   'folder with the four MNIST IDX files')


class MNISTError(Exception):
    """MNIST could not be loaded; the message names the file and the fault."""


class MNISTChecksumError(MNISTError):
    """A payload's sha256 differs from the one in :data:`FILES`."""


class MNISTFormatError(MNISTError):
    """Not a valid IDX file: magic number, sizes, gzip stream or shapes."""


class MNISTNotFoundError(MNISTError):
    """A file is missing, or no source (cache or mirror) could provide it."""


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
    unknown = [s for s in splits if s not in _SPLITS]
    if unknown or not splits:
        raise ValueError('splits must name some of %s, got %r'
                         % (', '.join(_SPLITS), splits))
    if data_dir is not None:
        raw = _load_from_folder(data_dir, splits)
    else:
        raw = _load_from_chainer_cache(splits)
        if raw is None:
            if cache_dir is None:
                cache_dir = os.path.join(chainer.dataset.get_dataset_root(),
                                         'chainer-vae', 'mnist')
            raw = _load_from_download_cache(
                cache_dir, _resolve_mirrors(mirrors), download, progress,
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


def parse_idx(payload, name, magic):
    """Parses an uncompressed IDX file of unsigned bytes.

    Args:
        payload (bytes): The whole file.
        name (str): What to call the file in error messages.
        magic (int): Expected magic number (2051 images, 2049 labels).

    Returns:
        numpy.ndarray: uint8, shaped by the header's sizes (a read-only view
        of ``payload``).

    Raises:
        MNISTFormatError: Wrong magic number, or the payload length does not
            match the header.
    """
    if len(payload) < 4:
        raise MNISTFormatError('%s: %d bytes, too short for an IDX header'
                               % (name, len(payload)))
    found, = struct.unpack('>I', payload[:4])
    if found != magic:
        raise MNISTFormatError('%s: magic number %d, expected %d'
                               % (name, found, magic))
    ndim = magic & 0xff  # the low byte of the magic number
    header = 4 + 4 * ndim
    if len(payload) < header:
        raise MNISTFormatError('%s: %d bytes, too short for an IDX header of '
                               '%d dimensions' % (name, len(payload), ndim))
    shape = struct.unpack('>%dI' % ndim, payload[4:header])
    expected = header + math.prod(shape)
    if len(payload) != expected:
        raise MNISTFormatError(
            '%s: %d bytes, but its header (shape %s) needs %d: %s'
            % (name, len(payload), shape, expected,
               'truncated' if len(payload) < expected else 'trailing bytes'))
    return np.frombuffer(payload, np.uint8, offset=header).reshape(shape)


def _resolve_mirrors(mirrors):
    """The base URLs to try, each ending in '/'."""
    if mirrors is None:
        from_env = os.environ.get(MIRRORS_ENV, '')
        mirrors = from_env.split(',') if from_env.strip() else DEFAULT_MIRRORS
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    bases = [m.strip() for m in mirrors if m.strip()]
    return [b if b.endswith('/') else b + '/' for b in bases]


def _to_split(images, labels):
    """uint8 (N, 784) and (N,) arrays -> a float32/int32 :class:`Split`."""
    images = images.astype(np.float32)
    # Multiplying by the float32 of 1/255, as chainer.datasets.get_mnist
    # (the article's loader) does, gives its values bit for bit.
    images *= np.float32(1.0 / 255.0)
    return Split(images, labels.astype(np.int32))


def _gunzip(compressed, name):
    try:
        return gzip.decompress(compressed)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MNISTFormatError('%s: not a complete gzip stream (%s: %s)'
                               % (name, type(exc).__name__, exc)) from exc


def _accepted_sha256(name):
    """The sha256 values accepted for file ``name``: MNIST's, and the one
    that ``$VAE_MNIST_EXTRA_SHA256`` lists for it, if any."""
    accepted = {FILES[name]}
    path = os.environ.get(EXTRA_SHA256_ENV)
    if path:
        try:
            with open(path, encoding='utf-8') as f:
                extra = json.load(f)
        except (OSError, ValueError) as exc:
            raise MNISTError('%s=%s: not a readable JSON file of checksums '
                             '(%s)' % (EXTRA_SHA256_ENV, path, exc)) from exc
        if isinstance(extra, dict) and isinstance(extra.get(name), str):
            accepted.add(extra[name])
    return accepted


def _check_sha256(payload, name, source):
    """Raises MNISTChecksumError unless ``payload`` is the MNIST file (or
    the stand-in that ``$VAE_MNIST_EXTRA_SHA256`` allows)."""
    expected = FILES[name]
    actual = hashlib.sha256(payload).hexdigest()
    if actual not in _accepted_sha256(name):
        raise MNISTChecksumError(
            '%s: sha256 of the uncompressed payload is %s, expected %s for '
            '%s: the file is corrupt or not MNIST'
            % (source, actual, expected, name))


def _parse_verified(payload, name, source):
    """Parses an uncompressed payload (whose header checks name a fault in
    the file's structure), then checks its checksum (which catches any other
    difference from MNIST)."""
    magic = _IMAGES_MAGIC if '-images-' in name else _LABELS_MAGIC
    array = parse_idx(payload, source, magic)
    expected = _EXAMPLES[name]
    if len(array) != expected:
        raise MNISTFormatError('%s: %d examples, but %s has %d'
                               % (source, len(array), name, expected))
    _check_sha256(payload, name, source)
    return array


def _read_file(path, name):
    """Reads, decompresses (``.gz``), verifies and parses one IDX file."""
    with open(path, 'rb') as f:
        payload = f.read()
    if path.endswith('.gz'):
        payload = _gunzip(payload, path)
    return _parse_verified(payload, name, path)


def _pair(images, labels, source):
    """IDX arrays of one split -> (images (N, 784), labels (N,))."""
    if (images.ndim != 3 or images.shape[1:] != (_SIDE, _SIDE)
            or labels.shape != images.shape[:1]):
        raise MNISTFormatError('%s: images of shape %s do not match labels '
                               'of shape %s'
                               % (source, images.shape, labels.shape))
    return images.reshape(len(images), _SIDE * _SIDE), labels


def _files_of(splits):
    """The IDX file names of ``splits``."""
    return [name for split in splits for name in _SPLITS[split][:2]]


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
    arrays = {name: _read_file(path, name) for name, path in found.items()}
    logger.info('MNIST read from %s', data_dir)
    return {split: _pair(arrays[_SPLITS[split][0]], arrays[_SPLITS[split][1]],
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
    images_name, labels_name, n = _SPLITS[split]
    with np.load(path, allow_pickle=False) as npz:
        images, labels = npz['x'], npz['y']
    if (images.shape != (n, _SIDE * _SIDE) or images.dtype != np.uint8
            or labels.shape != (n,) or labels.dtype != np.uint8):
        raise MNISTFormatError(
            '%s: expected x uint8 %s and y uint8 %s, got x %s %s and y %s %s'
            % (path, (n, _SIDE * _SIDE), (n,), images.dtype, images.shape,
               labels.dtype, labels.shape))
    # Rebuilding the IDX payloads checks the arrays against FILES exactly.
    for key, name, header, array in (
            ('x', images_name,
             struct.pack('>4I', _IMAGES_MAGIC, n, _SIDE, _SIDE), images),
            ('y', labels_name, struct.pack('>2I', _LABELS_MAGIC, n), labels)):
        _check_sha256(header + np.ascontiguousarray(array).tobytes(), name,
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
                arrays[name] = _read_file(path, name)
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
               _NOT_FOUND_HINT))
    if missing:
        os.makedirs(cache_dir, exist_ok=True)
        unreachable = {}  # mirror -> connection error, not retried
        for name in missing:
            arrays[name] = _download_from_mirrors(
                name, cache_dir, mirrors, unreachable, progress)
    logger.info('MNIST read from %s', cache_dir)
    return {split: _pair(arrays[_SPLITS[split][0]], arrays[_SPLITS[split][1]],
                         cache_dir) for split in splits}


def _download_from_mirrors(name, cache_dir, mirrors, unreachable, progress):
    """Tries each mirror in turn; returns the parsed array of the first
    verified download, or raises MNISTNotFoundError listing every failure."""
    failures = []
    for mirror in mirrors:
        url = mirror + name + '.gz'
        if mirror in unreachable:
            failures.append('%s: skipped, mirror unreachable (%s)'
                            % (url, unreachable[mirror]))
            continue
        try:
            return _download(url, name, cache_dir, progress)
        except urllib.error.HTTPError as exc:
            failures.append('%s: %s' % (url, exc))
        except urllib.error.URLError as exc:
            unreachable[mirror] = exc.reason
            failures.append('%s: %s' % (url, exc.reason))
        except (OSError, http.client.HTTPException, ValueError,
                MNISTError) as exc:
            failures.append('%s: %s: %s' % (url, type(exc).__name__, exc))
    raise MNISTNotFoundError(
        'could not download %s from any mirror:\n  %s\n%s'
        % (name, '\n  '.join(failures) or 'no mirrors given',
           _NOT_FOUND_HINT))


def _download(url, name, cache_dir, progress):
    """Downloads ``url`` into the cache as ``<name>.gz``, atomically and only
    if its payload verifies; returns the parsed array."""
    fd, tmp_path = tempfile.mkstemp(prefix='.%s.' % name, suffix='.part',
                                    dir=cache_dir)
    try:
        with os.fdopen(fd, 'wb') as f, urllib.request.urlopen(
                url, timeout=DOWNLOAD_TIMEOUT) as response:
            size = response.headers.get('Content-Length')
            with tqdm(total=int(size) if size else None, unit='B',
                      unit_scale=True, unit_divisor=1024, desc=name + '.gz',
                      disable=not progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b''):
                    f.write(chunk)
                    bar.update(len(chunk))
        with open(tmp_path, 'rb') as f:
            array = _parse_verified(_gunzip(f.read(), url), name, url)
        os.replace(tmp_path, os.path.join(cache_dir, name + '.gz'))
    except BaseException:
        os.remove(tmp_path)
        raise
    return array
