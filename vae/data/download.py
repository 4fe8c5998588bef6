"""Downloads of MNIST's files into a cache, from an ordered list of mirrors.

A download is written under a temporary name and moved into place only after
its payload verifies (:func:`vae.data.idx.parse_verified`), so that a failed or
corrupt download leaves nothing in the cache.
"""
import http.client
import os
import tempfile
import urllib.error
import urllib.request

from tqdm import tqdm

from vae.data.idx import (NOT_FOUND_HINT, MNISTError, MNISTNotFoundError,
                          gunzip, parse_verified)

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


def resolve_mirrors(mirrors):
    """The base URLs to try, each ending in '/'."""
    if mirrors is None:
        from_env = os.environ.get(MIRRORS_ENV, '')
        mirrors = from_env.split(',') if from_env.strip() else DEFAULT_MIRRORS
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    bases = [m.strip() for m in mirrors if m.strip()]
    return [b if b.endswith('/') else b + '/' for b in bases]


def download_from_mirrors(name, cache_dir, mirrors, unreachable, progress):
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
           NOT_FOUND_HINT))


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
            array = parse_verified(gunzip(f.read(), url), name, url)
        os.replace(tmp_path, os.path.join(cache_dir, name + '.gz'))
    except BaseException:
        os.remove(tmp_path)
        raise
    return array
