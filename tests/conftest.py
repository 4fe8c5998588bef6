"""Shared fixtures of the test suite.

Two MNISTs: ``mnist_dir`` is a synthetic one in MNIST's format and sizes
(``synthetic_mnist.py``), written once per session, for every test that
needs only MNIST-shaped data; ``real_mnist_dir`` is the real data, from the
folder named by ``$VAE_TEST_MNIST_DIR``, for the few tests of the real
data's numbers (the article's losses, the published checksums and counts).
"""
import os

import pytest

import synthetic_mnist
from vae.data import EXTRA_SHA256_ENV, load_mnist

#: Environment variable naming a folder with the four real MNIST IDX files.
MNIST_DIR_ENV = 'VAE_TEST_MNIST_DIR'


@pytest.fixture(scope='session')
def mnist_dir(tmp_path_factory):
    """Folder of the synthetic MNIST. Its checksums are allowed through
    ``$VAE_MNIST_EXTRA_SHA256`` for the rest of the session, subprocesses
    included."""
    folder = tmp_path_factory.mktemp('synthetic_mnist')
    os.environ[EXTRA_SHA256_ENV] = synthetic_mnist.write(str(folder))
    return str(folder)


@pytest.fixture(scope='session')
def real_mnist_dir():
    """Folder of the real MNIST files, ``$VAE_TEST_MNIST_DIR``. Unset or
    missing: a failure under CI (``$CI`` set), a skip elsewhere."""
    path = os.environ.get(MNIST_DIR_ENV)
    if not path or not os.path.isdir(path):
        message = ('real MNIST not found: set %s to a folder holding the '
                   'four MNIST IDX files (docs/testing.md)' % MNIST_DIR_ENV)
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope='session')
def mnist(mnist_dir):
    """``(train, test)`` of the synthetic MNIST, loaded once per session."""
    return load_mnist(mnist_dir, progress=False)


@pytest.fixture(scope='session')
def real_mnist(real_mnist_dir):
    """``(train, test)`` of the real MNIST, loaded once per session."""
    return load_mnist(real_mnist_dir, progress=False)


@pytest.fixture(scope='module')
def small_mnist(mnist):
    """``(train_images, test_images)``: 300 and 100 images, for runs of a
    few dozen iterations."""
    train, test = mnist
    return train.images[:300], test.images[:100]
