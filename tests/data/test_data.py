"""Tests of vae.data.mnist: MNIST from a folder, Chainer's cache and mirrors.

The network tests talk only to an HTTP server on 127.0.0.1 started here.
"""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import struct
import threading
import urllib.request

import chainer
import numpy as np
import pytest

from vae.data import (FILES, DynamicBinarized, MNISTChecksumError,
                      MNISTFormatError, MNISTNotFoundError,
                      binarize_images, load_mnist, parse_idx)

# Published counts of each digit 0..9 in the real MNIST.
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851,
                      5949]
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def _copy_gz_files(mnist_dir, dest, names=FILES):
    os.makedirs(dest, exist_ok=True)
    for name in names:
        shutil.copyfile(os.path.join(mnist_dir, name + '.gz'),
                        os.path.join(dest, name + '.gz'))
    return str(dest)


def _payload(mnist_dir, name):
    with gzip.open(os.path.join(mnist_dir, name + '.gz'), 'rb') as f:
        return f.read()


def _write_altered(mnist_dir, dest, name, offset):
    """Writes ``<name>.gz`` into ``dest`` with one payload byte changed;
    returns the sha256 of the altered payload."""
    payload = bytearray(_payload(mnist_dir, name))
    payload[offset] = (payload[offset] + 1) % 256
    with open(os.path.join(dest, name + '.gz'), 'wb') as f:
        f.write(gzip.compress(bytes(payload), compresslevel=1))
    return hashlib.sha256(payload).hexdigest()


def _write_truncated(mnist_dir, dest, name):
    with open(os.path.join(mnist_dir, name + '.gz'), 'rb') as f:
        compressed = f.read()
    with open(os.path.join(dest, name + '.gz'), 'wb') as f:
        f.write(compressed[:len(compressed) // 2])


def _assert_same(loaded, expected):
    for got, want in zip(loaded, expected):
        np.testing.assert_array_equal(got.images, want.images)
        np.testing.assert_array_equal(got.labels, want.labels)


# --- the real data ---------------------------------------------------------

def test_real_data_as_the_article_uses_it(real_mnist):
    """The real files: their published checksums (the loader verifies
    them), sizes, label counts and pixel scale."""
    train, test = real_mnist
    for split, n, counts in ((train, 60000, TRAIN_LABEL_COUNTS),
                             (test, 10000, TEST_LABEL_COUNTS)):
        assert split.images.shape == (n, 784)
        assert split.images.dtype == np.float32
        assert split.images.min() == 0 and split.images.max() == 1
        assert split.labels.shape == (n,)
        assert split.labels.dtype == np.int32
        assert np.bincount(split.labels).tolist() == counts
    # Pixels are k / 255 for integers k.
    scaled = test.images[:1000] * 255
    assert np.abs(scaled - np.rint(scaled)).max() < 1e-4


# --- a user's folder -------------------------------------------------------

def test_checksum_mismatch_names_the_file(mnist_dir, tmp_path):
    folder = _copy_gz_files(mnist_dir, tmp_path)
    # Byte 8 is the first label: still a valid digit, so only the checksum
    # can tell.
    actual = _write_altered(mnist_dir, folder, 't10k-labels-idx1-ubyte', 8)
    with pytest.raises(MNISTChecksumError) as info:
        load_mnist(folder, progress=False)
    message = str(info.value)
    assert os.path.join(folder, 't10k-labels-idx1-ubyte.gz') in message
    assert FILES['t10k-labels-idx1-ubyte'] in message
    assert actual in message


def test_truncated_gzip_is_a_format_error(mnist_dir, tmp_path):
    folder = _copy_gz_files(mnist_dir, tmp_path)
    _write_truncated(mnist_dir, folder, 't10k-labels-idx1-ubyte')
    with pytest.raises(MNISTFormatError,
                       match='t10k-labels-idx1-ubyte.gz: not a complete gzip'):
        load_mnist(folder, progress=False)


def _labels_file(folder, payload):
    with open(os.path.join(folder, 't10k-labels-idx1-ubyte.gz'), 'wb') as f:
        f.write(gzip.compress(payload, compresslevel=1))


@pytest.mark.parametrize('payload,message', [
    (struct.pack('>2I', 2050, 10000) + bytes(10000),
     'magic number 2050, expected 2049'),
    (struct.pack('>2I', 2049, 9999) + bytes(9999),
     '9999 examples, but t10k-labels-idx1-ubyte has 10000'),
    (b'', '0 bytes, too short for an IDX header'),
    (struct.pack('>2I', 2049, 10000) + bytes(9000),
     'needs 10008: truncated'),
], ids=['magic', 'count', 'empty', 'short'])
def test_a_malformed_file_is_named_for_its_fault_not_its_checksum(
        mnist_dir, tmp_path, payload, message):
    folder = _copy_gz_files(mnist_dir, tmp_path)
    _labels_file(folder, payload)
    with pytest.raises(MNISTFormatError) as info:
        load_mnist(folder, progress=False)
    assert message in str(info.value)
    assert 'sha256' not in str(info.value)
    assert 't10k-labels-idx1-ubyte.gz' in str(info.value)


def test_only_the_files_of_the_asked_splits_are_read(mnist_dir, tmp_path,
                                                      mnist):
    folder = _copy_gz_files(mnist_dir, tmp_path, [
        't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'])
    test, = load_mnist(folder, progress=False, splits=('test',))
    np.testing.assert_array_equal(test.images, mnist[1].images)
    with pytest.raises(MNISTNotFoundError, match='train-images'):
        load_mnist(folder, progress=False)
    with pytest.raises(ValueError, match="splits must name some of"):
        load_mnist(folder, progress=False, splits=('validation',))


def test_missing_file_names_the_paths_looked_for(mnist_dir, tmp_path):
    names = [n for n in FILES if n != 'train-labels-idx1-ubyte']
    folder = _copy_gz_files(mnist_dir, tmp_path, names)
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(folder, progress=False)
    message = str(info.value)
    for base in ('train-labels-idx1-ubyte', 'train-labels.idx1-ubyte'):
        for ext in ('.gz', ''):
            assert os.path.join(folder, base + ext) in message
    assert 't10k' not in message


def test_uncompressed_and_dotted_names(mnist_dir, tmp_path, mnist):
    for name in FILES:
        # One file under the dotted name some copies of MNIST use.
        target = (name.replace('-idx', '.idx')
                  if name == 't10k-images-idx3-ubyte' else name)
        (tmp_path / target).write_bytes(_payload(mnist_dir, name))
    before = sorted(os.listdir(tmp_path))
    _assert_same(load_mnist(str(tmp_path), progress=False), mnist)
    assert sorted(os.listdir(tmp_path)) == before  # nothing written


def _idx(magic, shape, n_bytes=None):
    header = struct.pack('>I%dI' % len(shape), magic, *shape)
    size = int(np.prod(shape)) if n_bytes is None else n_bytes
    return header + bytes(range(256)) * (size // 256) + bytes(size % 256)


def test_parse_idx_reads_a_consistent_file():
    array = parse_idx(_idx(2051, (3, 28, 28)), 'fake', 2051)
    assert array.shape == (3, 28, 28) and array.dtype == np.uint8
    assert array.ravel()[:256].tolist() == list(range(256))


@pytest.mark.parametrize('payload, match', [
    (_idx(2049, (3, 28, 28)), 'fake: magic number 2049, expected 2051'),
    (_idx(2051, (3, 28, 28), n_bytes=3 * 784 - 1), 'truncated'),
    (_idx(2051, (3, 28, 28), n_bytes=3 * 784 + 1), 'trailing bytes'),
    (b'\x00\x00\x08\x03\x00', 'too short'),
])
def test_parse_idx_rejects_bad_files(payload, match):
    with pytest.raises(MNISTFormatError, match=match):
        parse_idx(payload, 'fake', 2051)


# --- Chainer's cache and the download cache --------------------------------

@pytest.fixture
def dataset_root(tmp_path, monkeypatch):
    """An empty Chainer dataset root (Chainer reads the environment variable
    only at import time), and no mirrors from the environment."""
    monkeypatch.delenv('VAE_MNIST_MIRRORS', raising=False)
    saved = chainer.dataset.get_dataset_root()
    root = tmp_path / 'dataset-root'
    chainer.dataset.set_dataset_root(str(root))
    try:
        yield root
    finally:
        chainer.dataset.set_dataset_root(saved)


def _write_chainer_cache(root, mnist):
    """train.npz / test.npz as chainer.datasets.get_mnist writes them."""
    folder = root / 'pfnet' / 'chainer' / 'mnist'
    folder.mkdir(parents=True)
    for split, data in zip(('train', 'test'), mnist):
        np.savez(folder / (split + '.npz'),
                 x=np.rint(data.images * 255).astype(np.uint8),
                 y=data.labels.astype(np.uint8))
    return folder


def test_chainer_cache_is_used(dataset_root, tmp_path, mnist):
    _write_chainer_cache(dataset_root, mnist)
    cache_dir = tmp_path / 'cache'
    loaded = load_mnist(cache_dir=str(cache_dir), mirrors=[], download=False,
                        progress=False)
    _assert_same(loaded, mnist)
    assert not cache_dir.exists()


def _garble(path):
    path.write_bytes(b'not a zip file')


def _alter_one_pixel(path):
    with np.load(path) as npz:
        x, y = npz['x'].copy(), npz['y']
    x[0, 400] ^= 1
    np.savez(path, x=x, y=y)


@pytest.mark.parametrize('corrupt', [_garble, _alter_one_pixel])
def test_invalid_chainer_cache_is_skipped_with_a_warning(
        dataset_root, tmp_path, mnist, corrupt):
    folder = _write_chainer_cache(dataset_root, mnist)
    corrupt(folder / 'test.npz')
    with pytest.warns(UserWarning, match="ignoring Chainer's MNIST cache"):
        with pytest.raises(MNISTNotFoundError, match='download is off'):
            load_mnist(cache_dir=str(tmp_path / 'cache'), download=False,
                       progress=False)


def test_nothing_cached_and_download_off(dataset_root, tmp_path):
    cache_dir = tmp_path / 'cache'
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(cache_dir=str(cache_dir), download=False, progress=False)
    message = str(info.value)
    assert str(cache_dir / 'train-images-idx3-ubyte.gz') in message
    assert '--data-dir' in message
    # Looking at Chainer's cache must not create its folder.
    assert not dataset_root.exists()


class _MirrorServer(http.server.ThreadingHTTPServer):
    """A static file server that records the paths asked for."""

    def __init__(self, directory):
        handler = functools.partial(_QuietHandler, directory=str(directory))
        super().__init__(('127.0.0.1', 0), handler)
        self.requests = []
        self.url = 'http://127.0.0.1:%d/' % self.server_address[1]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture(scope='module')
def mirror_server(mnist_dir, tmp_path_factory):
    """Serves ``good/`` (the four files), ``bad/`` (train images with one
    byte changed, train labels truncated, nothing else) and ``missing/``
    (404 for everything)."""
    root = tmp_path_factory.mktemp('mirror')
    _copy_gz_files(mnist_dir, root / 'good')
    os.makedirs(root / 'bad')
    _write_altered(mnist_dir, root / 'bad', 'train-images-idx3-ubyte', 5000)
    _write_truncated(mnist_dir, root / 'bad', 'train-labels-idx1-ubyte')
    server = _MirrorServer(root)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def server(mirror_server):
    mirror_server.requests.clear()
    return mirror_server


@pytest.fixture
def closed_port_url():
    """A URL on 127.0.0.1 where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    return 'http://127.0.0.1:%d/' % port


def test_download_falls_through_to_a_good_mirror(
        dataset_root, tmp_path, server, closed_port_url, mnist, monkeypatch,
        capsys):
    opened = []
    urlopen = urllib.request.urlopen

    def recording_urlopen(url, **kwargs):
        opened.append(url)
        return urlopen(url, **kwargs)

    monkeypatch.setattr(urllib.request, 'urlopen', recording_urlopen)
    cache_dir = tmp_path / 'cache'
    mirrors = [closed_port_url, server.url + 'missing/', server.url + 'bad/',
               server.url + 'good/']
    loaded = load_mnist(cache_dir=str(cache_dir), mirrors=mirrors,
                        progress=True)
    _assert_same(loaded, mnist)
    assert sorted(os.listdir(cache_dir)) == sorted(n + '.gz' for n in FILES)
    # The corrupt and the truncated files were fetched, then rejected.
    assert '/bad/train-images-idx3-ubyte.gz' in server.requests
    assert '/bad/train-labels-idx1-ubyte.gz' in server.requests
    # A mirror that refused a connection is not asked for the other files.
    assert [u for u in opened if u.startswith(closed_port_url)] == [
        closed_port_url + 'train-images-idx3-ubyte.gz']
    assert 't10k-labels-idx1-ubyte.gz' in capsys.readouterr().err  # progress

    server.requests.clear()
    _assert_same(load_mnist(cache_dir=str(cache_dir), mirrors=mirrors,
                            download=False, progress=False), mnist)
    assert server.requests == []


def test_corrupt_download_is_not_cached(dataset_root, tmp_path, server):
    cache_dir = tmp_path / 'cache'
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(cache_dir=str(cache_dir), mirrors=[server.url + 'bad/'],
                   progress=False)
    assert server.url + 'bad/train-images-idx3-ubyte.gz: ' in str(info.value)
    assert 'MNISTChecksumError' in str(info.value)
    assert os.listdir(cache_dir) == []  # no file, no temporary leftover


def test_every_mirror_failure_is_listed(dataset_root, tmp_path, server,
                                        closed_port_url, monkeypatch):
    # Mirrors from the environment, one without its trailing slash.
    missing = server.url + 'missing'
    monkeypatch.setenv('VAE_MNIST_MIRRORS', closed_port_url + ',' + missing)
    with pytest.raises(MNISTNotFoundError) as info:
        load_mnist(cache_dir=str(tmp_path / 'cache'), progress=False)
    message = str(info.value)
    assert closed_port_url + 'train-images-idx3-ubyte.gz: ' in message
    assert 'refused' in message
    assert missing + '/train-images-idx3-ubyte.gz: HTTP Error 404' in message
    assert '--data-dir' in message


# --- binarization ----------------------------------------------------------

def test_bad_binarize_value_is_rejected_before_loading(tmp_path):
    with pytest.raises(ValueError, match="'threshold', 'dynamic'"):
        load_mnist(str(tmp_path / 'nowhere'), binarize='otsu')


def test_load_mnist_binarized(mnist_dir, mnist):
    for split, want in zip(load_mnist(mnist_dir, binarize='threshold',
                                      progress=False), mnist):
        np.testing.assert_array_equal(
            split.images, (want.images > 0.5).astype(np.float32))
        np.testing.assert_array_equal(split.labels, want.labels)
    # 'dynamic': one sample of each split, each from a generator of `seed`,
    # so the test sample is the one scripts/train.py draws for it alone
    for split, want in zip(load_mnist(mnist_dir, binarize='dynamic', seed=7,
                                      progress=False), mnist):
        assert split.images.dtype == np.float32
        np.testing.assert_array_equal(
            split.images, binarize_images(want.images, 'dynamic', rng=7))
        np.testing.assert_array_equal(  # a prefix is a prefix of the sample
            split.images[:200],
            binarize_images(want.images[:200], 'dynamic', rng=7))


def test_dynamic_binarization_has_the_pixels_as_mean(mnist):
    images = mnist[1].images[:4]  # (4, 784)
    samples = binarize_images(np.broadcast_to(images, (4000,) + images.shape),
                              'dynamic', rng=0)  # (4000, 4, 784)
    assert ((samples == 0) | (samples == 1)).all()
    mean = samples.mean(axis=0)
    assert np.abs(mean - images).max() < 0.05  # about 6 standard errors
    assert np.abs(mean - images).mean() < 0.005
    np.testing.assert_array_equal(mean[images == 0], 0)
    np.testing.assert_array_equal(mean[images == 1], 1)


def test_dynamic_binarized_dataset(mnist):
    images = mnist[1].images[:10]
    dataset = DynamicBinarized(images, seed=3)
    assert len(dataset) == 10
    first, second = dataset[4], dataset[4]
    assert first.shape == (784,) and first.dtype == np.float32
    assert not np.array_equal(first, second)  # a new sample every call
    again = DynamicBinarized(images, seed=3)
    np.testing.assert_array_equal(again[4], first)  # same seed, same samples
    np.testing.assert_array_equal(again[4], second)

    batch = dataset[2:5]
    assert isinstance(batch, list) and len(batch) == 3
    assert all(x.shape == (784,) for x in batch)
    assert len(dataset[np.array([0, 9])]) == len(dataset[[0, 9]]) == 2

    iterator = chainer.iterators.SerialIterator(dataset, 5, shuffle=False)
    epochs = [chainer.dataset.concat_examples(iterator.next())
              for _ in range(4)]  # two epochs of two batches
    assert epochs[0].shape == (5, 784)
    assert set(np.unique(epochs[0])) <= {0.0, 1.0}
    assert not np.array_equal(epochs[0], epochs[2])  # resampled each epoch


def test_dynamic_binarized_rejects_raw_pixels():
    with pytest.raises(ValueError, match=r'\[0, 1\]'):
        DynamicBinarized(np.full((2, 784), 255.0))


def test_dynamic_binarized_warns_on_binary_images():
    with pytest.warns(UserWarning, match='already binary'):
        DynamicBinarized(np.eye(3, dtype=np.float32))
