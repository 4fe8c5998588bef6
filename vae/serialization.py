"""Model files that carry their own sizes.

A ``model.npz`` holds the VAE's parameters under their link names (as
``chainer.serializers.save_npz`` writes them) plus one entry ``_vae_meta``:
a JSON string with ``n_in``, ``n_latent``, ``n_h`` and ``activation``, so
that the plotting and evaluation scripts can rebuild the model from the
file alone.
"""
import contextlib
import json
import os
import zipfile

import numpy
from chainer import serializers

from vae import atomic
from vae.net import VAE, activation_name

META_KEY = '_vae_meta'
FORMAT_VERSION = 1


class ModelFileError(Exception):
    """A model file is missing, corrupt, not a VAE, or of other sizes."""


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
    atomic.save_npz(path, arrays)


def load_model(path):
    """Rebuild the VAE saved at ``path`` by :func:`save_model`.

    Returns:
        VAE: the model, on the CPU.
    """
    with _open_npz(path) as npz:
        meta = _meta_of(npz, path)
        model = VAE(meta['n_in'], meta['n_latent'], meta['n_h'],
                    meta['activation'])
        try:
            serializers.NpzDeserializer(npz).load(model)
        except (KeyError, ValueError) as e:
            raise ModelFileError('%s: parameters do not match its recorded '
                                 'sizes (%s)' % (path, e))
    return model


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
