"""A synthetic MNIST for the tests: the four gzip IDX files, of MNIST's
sizes (60,000 and 10,000 28x28 images), with seven-segment digits in place
of handwriting.

The loader checks each file's size against MNIST's, so the stand-in keeps
those sizes; it accepts the stand-in's payloads because the tests name their
checksums in ``$VAE_MNIST_EXTRA_SHA256`` (see ``vae.data.mnist``). Each image
is the segments of its label's digit, blurred at the edges, moved by up to
two pixels, scaled in brightness and given a few specks of ink, so that a
VAE learns something digit-like from it and every figure has classes to
show. Nothing of it is
real data: tests of the article's numbers use the real files.
"""
import gzip
import hashlib
import json
import os
import struct

import numpy

SIDE = 28
# Seven segments as (row0, col0, row1, col1) in a 28x28 frame:
# a top, b top right, c bottom right, d bottom, e bottom left, f top left,
# g middle.
_SEGMENTS = {
    'a': (6, 9, 6, 19), 'b': (6, 19, 14, 19), 'c': (14, 19, 22, 19),
    'd': (22, 9, 22, 19), 'e': (14, 9, 22, 9), 'f': (6, 9, 14, 9),
    'g': (14, 9, 14, 19),
}
_DIGITS = ('abcdef', 'bc', 'abged', 'abgcd', 'fgbc', 'afgcd', 'afgedc',
           'abc', 'abcdefg', 'abcdfg')
_SHIFTS = range(-2, 3)


def _segment_distance(rows, cols, segment):
    """Distance of each pixel centre to a horizontal or vertical segment."""
    r0, c0, r1, c1 = segment
    dr = numpy.maximum(0, numpy.maximum(r0 - rows, rows - r1))
    dc = numpy.maximum(0, numpy.maximum(c0 - cols, cols - c1))
    return numpy.hypot(dr, dc)


def digit_templates():
    """(10, 28, 28) float64 in [0, 1]: each digit's segments, 3 pixels wide
    with soft edges."""
    rows, cols = numpy.mgrid[0:SIDE, 0:SIDE]
    templates = numpy.zeros((10, SIDE, SIDE))
    for digit, segments in enumerate(_DIGITS):
        distance = numpy.min([_segment_distance(rows, cols, _SEGMENTS[s])
                              for s in segments], axis=0)
        templates[digit] = numpy.clip(2.0 - distance, 0.0, 1.0)
    return templates


def make_split(n, seed):
    """``(images (n, 28, 28) uint8, labels (n,) uint8)``."""
    rng = numpy.random.default_rng(seed)
    templates = digit_templates()
    # every digit at every shift: (10, 5, 5, 28, 28)
    moved = numpy.array([[[numpy.roll(t, (dy, dx), axis=(0, 1))
                           for dx in _SHIFTS] for dy in _SHIFTS]
                         for t in templates])
    labels = rng.integers(0, 10, size=n)
    dy, dx = rng.integers(0, len(_SHIFTS), size=(2, n))
    brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1))
    # a few specks of ink on each image make every image distinct
    specks = (rng.random((n, SIDE, SIDE)) < 0.03) * 0.25
    images = numpy.rint(numpy.clip(
        moved[labels, dy, dx] * brightness + specks, 0, 1) * 255)
    return images.astype(numpy.uint8), labels.astype(numpy.uint8)


def _idx(array, magic):
    """The IDX payload of a uint8 array: magic, sizes, data (big-endian)."""
    header = struct.pack('>I', magic) + struct.pack(
        '>%dI' % array.ndim, *array.shape)
    return header + array.tobytes()


def write(folder, seed=0):
    """Writes the four ``*.gz`` files into ``folder`` and ``sha256.json``
    beside them (the value for ``$VAE_MNIST_EXTRA_SHA256``); returns the
    path of the JSON file."""
    os.makedirs(folder, exist_ok=True)
    checksums = {}
    for prefix, n, split_seed in (('train', 60000, seed),
                                  ('t10k', 10000, seed + 1)):
        images, labels = make_split(n, split_seed)
        for kind, array, magic in (('images-idx3', images, 2051),
                                   ('labels-idx1', labels, 2049)):
            name = '%s-%s-ubyte' % (prefix, kind)
            payload = _idx(array, magic)
            checksums[name] = hashlib.sha256(payload).hexdigest()
            with open(os.path.join(folder, name + '.gz'), 'wb') as f:
                f.write(gzip.compress(payload, compresslevel=1))
    path = os.path.join(folder, 'sha256.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(checksums, f, indent=1)
    return path
