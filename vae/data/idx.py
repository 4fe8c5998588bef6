"""MNIST's files in the IDX format, and the checks every copy passes.

An IDX file (LeCun et al., http://yann.lecun.com/exdb/mnist/) is a big-endian
header (magic number 2051 for images, 2049 for labels, then one 32-bit size
per dimension) followed by the uint8 payload. A payload is accepted when its
header fits and its sha256 is MNIST's (:data:`FILES`), so the arrays are the
same whichever source served them.
"""
import gzip
import hashlib
import json
import math
import os
import struct
import zlib

import numpy as np

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

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
SIDE = 28
#: Pixels in an image, as the loader returns it flat.
N_PIXELS = SIDE * SIDE
# split -> (images file, labels file, number of examples)
SPLITS = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 60000),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte', 10000),
}
#: What to do when MNIST is not found, for the error messages.
NOT_FOUND_HINT = ('pass data_dir (--data-dir in the scripts) pointing to a '
                  'folder with the four MNIST IDX files')
# file name -> number of examples
EXAMPLES = {name: n for images, labels, n in SPLITS.values()
             for name in (images, labels)}


class MNISTError(Exception):
    """MNIST could not be loaded; the message names the file and the fault."""


class MNISTChecksumError(MNISTError):
    """A payload's sha256 differs from the one in :data:`FILES`."""


class MNISTFormatError(MNISTError):
    """Not a valid IDX file: magic number, sizes, gzip stream or shapes."""


class MNISTNotFoundError(MNISTError):
    """A file is missing, or no source (cache or mirror) could provide it."""

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


def gunzip(compressed, name):
    try:
        return gzip.decompress(compressed)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise MNISTFormatError('%s: not a complete gzip stream (%s: %s)'
                               % (name, type(exc).__name__, exc)) from exc


def accepted_sha256(name):
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


def check_sha256(payload, name, source):
    """Raises MNISTChecksumError unless ``payload`` is the MNIST file (or
    the stand-in that ``$VAE_MNIST_EXTRA_SHA256`` allows)."""
    expected = FILES[name]
    actual = hashlib.sha256(payload).hexdigest()
    if actual not in accepted_sha256(name):
        raise MNISTChecksumError(
            '%s: sha256 of the uncompressed payload is %s, expected %s for '
            '%s: the file is corrupt or not MNIST'
            % (source, actual, expected, name))


def parse_verified(payload, name, source):
    """Parses an uncompressed payload (whose header checks name a fault in
    the file's structure), then checks its checksum (which catches any other
    difference from MNIST)."""
    magic = IMAGES_MAGIC if '-images-' in name else LABELS_MAGIC
    array = parse_idx(payload, source, magic)
    expected = EXAMPLES[name]
    if len(array) != expected:
        raise MNISTFormatError('%s: %d examples, but %s has %d'
                               % (source, len(array), name, expected))
    check_sha256(payload, name, source)
    return array


def read_file(path, name):
    """Reads, decompresses (``.gz``), verifies and parses one IDX file."""
    with open(path, 'rb') as f:
        payload = f.read()
    if path.endswith('.gz'):
        payload = gunzip(payload, path)
    return parse_verified(payload, name, path)
