"""Shared fixtures of the test suite."""
import os
import pathlib

import pytest

from vae.datasets import load_mnist

#: Environment variable naming a folder with the four MNIST IDX files.
MNIST_DIR_ENV = 'VAE_TEST_MNIST_DIR'
_DEFAULT_MNIST_DIR = (pathlib.Path(__file__).resolve().parent.parent.parent
                      / 'shared' / 'data' / 'mnist')


@pytest.fixture(scope='session')
def mnist_dir():
    """Folder of the real MNIST files: ``$VAE_TEST_MNIST_DIR``, else
    ``<repo>/../shared/data/mnist``. Missing: a failure under CI (``$CI``
    set), a skip elsewhere."""
    path = pathlib.Path(os.environ.get(MNIST_DIR_ENV) or _DEFAULT_MNIST_DIR)
    if not path.is_dir():
        message = ('MNIST not found at %s; set %s to a folder holding the '
                   'four MNIST IDX files' % (path, MNIST_DIR_ENV))
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return str(path)


@pytest.fixture(scope='session')
def mnist(mnist_dir):
    """``(train, test)`` of the real MNIST, loaded once per session."""
    return load_mnist(mnist_dir, progress=False)


@pytest.fixture(scope='module')
def small_mnist(mnist):
    """``(train_images, test_images)``: 300 and 100 images, for runs of a
    few dozen iterations."""
    train, test = mnist
    return train.images[:300], test.images[:100]
