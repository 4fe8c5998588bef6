"""Model files that carry their own sizes.

A ``model.npz`` holds the VAE's parameters under their link names (as
``chainer.serializers.save_npz`` writes them) plus one entry ``_vae_meta``:
a JSON string with ``n_in``, ``n_latent``, ``n_h`` and ``activation``, so
that the plotting and evaluation scripts can rebuild the model from the
file alone. The article's class reads such a file with plain
``chainer.serializers.load_npz`` (it ignores the extra entry).

The other way round, :func:`load_model` also reads what the article's
notebook saved, ``serializers.save_npz(path, model)`` of its ``VAE``: exactly
the 14 arrays of :func:`vae.model.layer_sizes`, no metadata. The sizes then
come from the weights' shapes; the activation, which no array records, is
the caller's (the article's published models used softplus).
"""
import contextlib
import json
import os
import sys
import zipfile
import zlib

import numpy
from chainer import serializers

from vae import atomic, memory
from vae.model import VAE, activation_name, layer_sizes

META_KEY = '_vae_meta'
FORMAT_VERSION = 1
#: The activation of a plain save_npz file when none is given: the one the
#: article's published models were built with.
ARTICLE_ACTIVATION = 'softplus'


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


def load_model(path, activation=None):
    """Rebuild the VAE saved at ``path``.

    Args:
        path: A file written by :func:`save_model`, or by the article's
            ``serializers.save_npz`` (see the module docstring).
        activation (str): The hidden activation. A file of this project
            records its own, which must then agree; for an article's file it
            defaults to :data:`ARTICLE_ACTIVATION` (with a note on stderr).

    Returns:
        VAE: the model, on the CPU.

    Raises:
        ModelFileError: naming the file and what is wrong with it (a file
            whose weights are not all finite is refused too).
    """
    if activation is not None:
        activation_name(activation)  # a known name, or ValueError
    with _open_npz(path) as npz:
        if META_KEY in npz.files:
            meta = _meta_of(npz, path)
            if activation not in (None, meta['activation']):
                raise ModelFileError(
                    '%s was trained with activation %s, not %s'
                    % (path, meta['activation'], activation))
        else:
            meta = article_meta(npz, path)
            if activation is None:
                print('note: %s records no activation; using %s, the '
                      "article's (choose another with --activation)"
                      % (path, ARTICLE_ACTIVATION), file=sys.stderr)
            meta['activation'] = activation or ARTICLE_ACTIVATION
        model = VAE(meta['n_in'], meta['n_latent'], meta['n_h'],
                    meta['activation'])
        try:
            serializers.NpzDeserializer(npz).load(model)
        except (KeyError, ValueError) as e:
            raise ModelFileError('%s: parameters do not match its recorded '
                                 'sizes (%s)' % (path, e))
    bad = nonfinite_parameters(model)
    if bad:
        raise ModelFileError(
            '%s holds weights that are NaN or infinite (%s%s), as a run that '
            'diverged writes them; nothing it computed would mean anything. '
            'Train again (a smaller --alpha, another --seed)'
            % (path, ', '.join(bad[:3]),
               ' and %d more' % (len(bad) - 3) if len(bad) > 3 else ''))
    return model


def nonfinite_parameters(model):
    """Names of the parameters of ``model`` that hold a NaN or an
    infinity."""
    return [name.lstrip('/') for name, param in sorted(model.namedparams())
            if not numpy.isfinite(param.array).all()]


def article_meta(npz, path):
    """The sizes of a plain ``save_npz`` file of the article's VAE, from its
    weights' shapes; :class:`ModelFileError` unless the file holds exactly
    the article's 14 arrays, of consistent shapes."""
    expected = {'%s/%s' % (name, p)
                for name, _, _ in layer_sizes(1, 1, 1) for p in ('W', 'b')}
    found = set(npz.files)
    if found != expected:
        missing, extra = sorted(expected - found), sorted(found - expected)
        raise ModelFileError(
            '%s is not a chainer-vae model file (no %s entry) nor the '
            "article's VAE saved with save_npz (%s); it may be a trainer "
            'snapshot or another network' % (path, META_KEY, '; '.join(
                part for part in (
                    'missing %s' % ', '.join(missing) if missing else '',
                    'unexpected %s' % ', '.join(extra[:5]) + (
                        ' and %d more' % (len(extra) - 5)
                        if len(extra) > 5 else '') if extra else '')
                if part)))
    try:
        n_h, n_in = npz['le1/W'].shape
        n_latent = npz['le3_mu/W'].shape[0]
        shapes = {key: npz[key].shape for key in expected}
    except (ValueError, zipfile.BadZipFile, zlib.error) as e:
        raise ModelFileError('%s is not a readable VAE (%s)' % (path, e))
    for name, fan_in, fan_out in layer_sizes(n_in, n_latent, n_h):
        for key, shape in (('W', (fan_out, fan_in)), ('b', (fan_out,))):
            if shapes['%s/%s' % (name, key)] != shape:
                raise ModelFileError(
                    "%s: %s/%s has shape %s, but the article's VAE with "
                    'n_in=%d, n_latent=%d, n_h=%d needs %s'
                    % (path, name, key, shapes['%s/%s' % (name, key)], n_in,
                       n_latent, n_h, shape))
    return {'n_in': n_in, 'n_latent': n_latent, 'n_h': n_h}


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
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ModelFileError('%s is damaged (%s); train it again, or use '
                             'an intact copy' % (path, e)) from None
    finally:
        npz.close()


def _meta_of(npz, path):
    try:
        meta = json.loads(str(npz[META_KEY]))
        for key in ('n_in', 'n_latent', 'n_h', 'activation'):
            meta[key]
        activation_name(meta['activation'])
        problem = sizes_problem(meta)
    except (ValueError, KeyError, TypeError, zipfile.BadZipFile,
            zlib.error) as e:
        problem = e
    if problem:
        raise ModelFileError('%s has unreadable model metadata (%s); the '
                             'file is damaged or not written by this project'
                             % (path, problem))
    return meta


def sizes_problem(meta):
    """What is wrong with the sizes ``n_in``, ``n_latent`` and ``n_h`` of
    ``meta``, or ``None``: each must be a positive integer, and the
    model must fit the machine's memory."""
    for key in ('n_in', 'n_latent', 'n_h'):
        value = meta[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return '%s is %r, not a positive integer' % (key, value)
    try:
        memory.check(memory.model_bytes(meta['n_in'], meta['n_latent'],
                                        meta['n_h']),
                     'a model of n_in=%d, n_latent=%d, n_h=%d'
                     % (meta['n_in'], meta['n_latent'], meta['n_h']),
                     'such sizes are not a VAE this machine can hold')
    except memory.MemoryEstimateError as e:
        return str(e)
    return None
