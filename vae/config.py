"""One source of defaults: ``configs/default.json``.

A run's configuration is the default file, updated by an optional config
file, updated by the command-line flags a user actually gave. Keys starting
with ``_`` are comments. The resolved configuration is written beside the
run's outputs (``config.json``).

The sizes carry the names of :class:`vae.model.VAE`'s arguments, ``n_latent``
and ``n_h``, everywhere: in config files, ``config.json``, model files and
messages. Files written before that rename used ``dim_z`` and ``n_hidden``;
:func:`read_config_file` reads them under the new names.

``ranks`` is the number of processes that train a run: scripts/train.py
sets it from ``mpiexec -n`` (1 without ``--communicator``), over whatever a
config file says, so that a run's record says how it was trained.
"""
import json
import math
import os
import stat

_HERE = os.path.dirname(os.path.abspath(__file__))
#: ``configs/``: the copy installed inside the package (``pip install .``),
#: else the folder of the clone the package runs from.
CONFIG_DIR = next(
    (path for path in (os.path.join(_HERE, 'configs'),
                       os.path.join(os.path.dirname(_HERE), 'configs'))
     if os.path.isfile(os.path.join(path, 'default.json'))),
    os.path.join(os.path.dirname(_HERE), 'configs'))
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, 'default.json')

#: The keys that fix a model's sizes: a snapshot or model file must agree.
MODEL_KEYS = ('n_latent', 'n_h', 'activation')
#: The keys a resumed run may change: how long it runs, how many snapshots
#: it keeps, and which of two bit-identical code paths computes it.
RESUMABLE_KEYS = ('epoch', 'snapshot_retain', 'fast')
#: Names of the sizes in files written before they took the VAE's names.
OLD_KEYS = {'dim_z': 'n_latent', 'n_hidden': 'n_h'}
#: Keys added after runs were first recorded, with the value that every run
#: recorded without them had: a run of one process before ``ranks`` existed.
ABSENT_MEANS = {'ranks': 1}

#: Seeds are in [0, SEED_LIMIT): what numpy.random.seed and CuPy take.
SEED_LIMIT = 2 ** 32
#: The largest config file read: a config is a small JSON object, and a
#: device such as /dev/zero or a huge file would otherwise be read forever.
MAX_CONFIG_BYTES = 1 << 20

_AT_LEAST_ONE = ('n_latent', 'n_h', 'k', 'k_test', 'epoch', 'batchsize',
                 'snapshot_retain', 'ranks')


class ConfigError(ValueError):
    """A config file is missing, unreadable, or holds unknown or bad keys."""


def read_config_file(path):
    """The settings in a JSON config file, comments (``_`` keys) dropped and
    the old size names read as the new ones."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ConfigError('config file %s is not a regular file (a '
                              'device, a pipe or a folder); name a JSON '
                              'file' % path)
        with open(path, 'rb') as f:
            text = f.read(MAX_CONFIG_BYTES + 1)
        if len(text) > MAX_CONFIG_BYTES:
            raise ConfigError('config file %s is larger than %d bytes; a '
                              'config is a small JSON object'
                              % (path, MAX_CONFIG_BYTES))
        data = json.loads(text)
    except FileNotFoundError:
        raise ConfigError('config file not found: %s' % path)
    except (OSError, ValueError) as e:
        if isinstance(e, ConfigError):
            raise
        raise ConfigError('cannot read config file %s: %s' % (path, e))
    if not isinstance(data, dict):
        raise ConfigError('config file %s must hold a JSON object' % path)
    settings, given_as = {}, {}
    for key, value in data.items():
        if key.startswith('_'):
            continue
        new = OLD_KEYS.get(key, key)
        if new in settings:
            raise ConfigError('config file %s gives %s twice (as %s and %s);'
                              ' keep one' % (path, new, given_as[new], key))
        settings[new], given_as[new] = value, key
    return settings


def defaults():
    """The default configuration."""
    return read_config_file(DEFAULT_CONFIG)


def resolve(config_file=None, overrides=None):
    """Defaults, then ``config_file``, then the non-``None`` ``overrides``.

    Every key must be a default key, and every value must have the type of
    the default (an int is accepted for a float; ``None`` defaults accept a
    string or ``None``).
    """
    config = defaults()
    layers = []
    if config_file is not None:
        layers.append((config_file, read_config_file(config_file)))
    if overrides:
        layers.append(('command line', {k: v for k, v in overrides.items()
                                        if v is not None}))
    for source, layer in layers:
        unknown = sorted(set(layer) - set(config))
        if unknown:
            raise ConfigError('%s: unknown setting(s) %s; known: %s' % (
                source, ', '.join(unknown), ', '.join(sorted(config))))
        for key, value in layer.items():
            config[key] = _check_type(source, key, value, config[key])
    check_values(config)
    return config


def check_values(config):
    """Raise :class:`ConfigError` naming every setting out of its range."""
    from vae.data.binarize import BINARIZE_MODES
    from vae.model import ACTIVATIONS
    problems = ['%s must be at least 1, got %r' % (key, config[key])
                for key in _AT_LEAST_ONE if config[key] < 1]
    if not (config['alpha'] > 0 and math.isfinite(config['alpha'])):
        problems.append('alpha must be positive and finite, got %r'
                        % config['alpha'])
    if not (config['C'] >= 0 and math.isfinite(config['C'])):
        problems.append('C must be finite and not negative, got %r'
                        % config['C'])
    if not 0 <= config['seed'] < SEED_LIMIT:
        problems.append('seed must be in [0, 2**32), got %r' % config['seed'])
    if config['activation'] not in ACTIVATIONS:
        problems.append('activation must be one of %s, got %r' % (
            ', '.join(sorted(ACTIVATIONS)), config['activation']))
    if config['binarize'] not in (None,) + BINARIZE_MODES:
        problems.append('binarize must be null or one of %s, got %r' % (
            ', '.join(BINARIZE_MODES), config['binarize']))
    if problems:
        raise ConfigError('; '.join(problems))


def _check_type(source, key, value, default):
    if default is None:
        ok = value is None or isinstance(value, str)
    elif isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ConfigError('%s: %s must be like %r, got %r'
                          % (source, key, default, value))
    return value
