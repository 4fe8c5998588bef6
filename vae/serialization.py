"""Model files that carry their own sizes, and atomic writes.

A ``model.npz`` holds the VAE's parameters under their link names (as
``chainer.serializers.save_npz`` writes them) plus one entry ``_vae_meta``:
a JSON string with ``n_in``, ``n_latent``, ``n_h`` and ``activation``, so
that the plotting and evaluation scripts can rebuild the model from the
file alone.
"""
import contextlib
import json
import os
import tempfile
import zipfile

import numpy
from chainer import serializers

from vae.net import VAE, activation_name

META_KEY = '_vae_meta'
FORMAT_VERSION = 1


class ModelFileError(Exception):
    """A model file is missing, corrupt, not a VAE, or of other sizes."""


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it into place on success.

    A crash or an exception leaves any previous file at ``path`` untouched
    and no temporary file behind.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    root, ext = os.path.splitext(base)
    fd, tmp = tempfile.mkstemp(prefix='.%s.' % root, suffix='.tmp' + ext,
                               dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_png(fig, path, dpi=100):
    """Save a matplotlib ``Figure`` as a PNG atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=dpi)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)


def model_meta(model):
    """The sizes and activation that rebuild ``model``."""
    name = model.activation
    if name is None:
        raise ValueError('cannot save a VAE with a custom activation %r: use '
                         'one of vae.ACTIVATIONS' % (model.act_func,))
    return {'format': FORMAT_VERSION, 'n_in': model.n_in,
            'n_latent': model.n_latent, 'n_h': model.n_h, 'activation': name}


def save_model(path, model):
    """Save ``model`` with its sizes to ``path`` (.npz) atomically."""
    arrays = {}
    serializers.DictionarySerializer(arrays).save(model)
    # DictionarySerializer has already brought CuPy arrays to the CPU
    arrays[META_KEY] = numpy.array(json.dumps(model_meta(model)))
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            numpy.savez(f, **arrays)


def read_meta(path):
    """The metadata of the model file at ``path`` (see module docstring)."""
    with _open_npz(path) as npz:
        return _meta_of(npz, path)


def load_model(path, expect=None):
    """Rebuild the VAE saved at ``path``.

    Args:
        path: A file written by :func:`save_model`.
        expect (dict): Optional sizes (``n_in``, ``n_latent``, ``n_h``,
            ``activation``) the model must have; a difference raises
            :class:`ModelFileError` naming each one.

    Returns:
        VAE: the model, on the CPU.
    """
    with _open_npz(path) as npz:
        meta = _meta_of(npz, path)
        check_meta(meta, expect, path)
        model = VAE(meta['n_in'], meta['n_latent'], meta['n_h'],
                    meta['activation'])
        try:
            serializers.NpzDeserializer(npz).load(model)
        except (KeyError, ValueError) as e:
            raise ModelFileError('%s: parameters do not match its recorded '
                                 'sizes (%s)' % (path, e))
    return model


def check_meta(meta, expect, path):
    """Raise :class:`ModelFileError` where ``meta`` differs from ``expect``."""
    if not expect:
        return
    diffs = ['%s is %r in the file but %r was asked for'
             % (key, meta.get(key), value)
             for key, value in sorted(expect.items())
             if value is not None and meta.get(key) != value]
    if diffs:
        raise ModelFileError('%s does not match the requested model: %s'
                             % (path, '; '.join(diffs)))


@contextlib.contextmanager
def _open_npz(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ModelFileError('model file not found: %s' % path)
    if not zipfile.is_zipfile(path):
        raise ModelFileError('%s is not a readable .npz model file (not a '
                             'zip archive)' % path)
    try:
        npz = numpy.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ModelFileError('%s is not a readable .npz model file (%s)'
                             % (path, e))
    if not hasattr(npz, 'files'):
        raise ModelFileError('%s is a single array, not a VAE model file'
                             % path)
    try:
        yield npz
    except zipfile.BadZipFile as e:
        raise ModelFileError('%s is corrupt (%s)' % (path, e))
    finally:
        npz.close()


def _meta_of(npz, path):
    if META_KEY not in npz.files:
        raise ModelFileError(
            '%s is not a chainer-vae model file (no %s entry); it may be a '
            'trainer snapshot or another network' % (path, META_KEY))
    try:
        meta = json.loads(str(npz[META_KEY]))
        for key in ('n_in', 'n_latent', 'n_h', 'activation'):
            meta[key]
        activation_name(meta['activation'])
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise ModelFileError('%s has unreadable model metadata (%s)'
                             % (path, e))
    return meta
