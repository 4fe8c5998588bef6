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

A resolved configuration is a :class:`Config`: one typed field per setting,
read as attributes (``config.n_latent``) and changed with
``dataclasses.replace``. Its fields have no defaults in Python; their
metadata says which fix the model's sizes, which a resumed run may change,
which must be at least 1, and the names and absent values of older files.
"""
import dataclasses
import json
import math
import os
import stat
import typing
from typing import Optional

_HERE = os.path.dirname(os.path.abspath(__file__))
#: ``configs/``: the copy installed inside the package (``pip install .``),
#: else the folder of the clone the package runs from.
CONFIG_DIR = next(
    (path for path in (os.path.join(_HERE, 'configs'),
                       os.path.join(os.path.dirname(_HERE), 'configs'))
     if os.path.isfile(os.path.join(path, 'default.json'))),
    os.path.join(os.path.dirname(_HERE), 'configs'))
DEFAULT_CONFIG = os.path.join(CONFIG_DIR, 'default.json')

#: Seeds are in [0, SEED_LIMIT): what numpy.random.seed and CuPy take.
SEED_LIMIT = 2 ** 32
#: The largest config file read: a config is a small JSON object, and a
#: device such as /dev/zero or a huge file would otherwise be read forever.
MAX_CONFIG_BYTES = 1 << 20


def _setting(model=False, resumable=False, at_least_one=False,
             old_name=None, absent_means=dataclasses.MISSING):
    """A field of :class:`Config`, without a default (the defaults are in
    ``configs/default.json``), its groups in its metadata.

    ``model``: it fixes the model's sizes; a snapshot or model file must
    agree. ``resumable``: a resumed run may change it. ``at_least_one``: it
    must be at least 1. ``old_name``: its name in files written before the
    sizes took the VAE's names. ``absent_means=VALUE``: it was added after
    runs were first recorded, and a record without it means ``VALUE``.
    """
    metadata = {'model': model, 'resumable': resumable,
                'at_least_one': at_least_one}
    if old_name is not None:
        metadata['old_name'] = old_name
    if absent_means is not dataclasses.MISSING:
        metadata['absent_means'] = absent_means
    return dataclasses.field(metadata=metadata)


class ConfigError(ValueError):
    """A config file is missing, unreadable, or holds unknown or bad keys."""


@dataclasses.dataclass(frozen=True)
class Config:
    """A run's settings, in the order of ``configs/default.json``.

    The types are the annotations': a float field takes an int (stored as a
    float), an int field takes no bool. Made with values of other types or
    out of their ranges, it raises :class:`ConfigError`.
    """

    n_latent: int = _setting(model=True, at_least_one=True, old_name='dim_z')
    n_h: int = _setting(model=True, at_least_one=True, old_name='n_hidden')
    activation: str = _setting(model=True)
    C: float = _setting()
    k: int = _setting(at_least_one=True)
    k_test: int = _setting(at_least_one=True)
    epoch: int = _setting(resumable=True, at_least_one=True)
    batchsize: int = _setting(at_least_one=True)
    alpha: float = _setting()
    seed: int = _setting()
    binarize: Optional[str] = _setting()
    snapshot_retain: int = _setting(resumable=True, at_least_one=True)
    fast: bool = _setting(resumable=True)
    cuda_graph: bool = _setting()
    test: bool = _setting()
    ranks: int = _setting(at_least_one=True, absent_means=1)

    def __post_init__(self):
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if not _fits(kind, value):
                raise ConfigError('%s must be %s, got %r'
                                  % (name, _TYPE_WORDS[kind], value))
            object.__setattr__(self, name, _as(kind, value))
        check_values(self)

    def as_dict(self):
        """The settings as a dict, in the order of the fields."""
        return dataclasses.asdict(self)

    def as_json(self):
        """The text of a run's ``config.json``."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + '\n'


def _names(group):
    return tuple(f.name for f in dataclasses.fields(Config)
                 if f.metadata[group])


#: Every setting, in the order of the fields.
NAMES = tuple(f.name for f in dataclasses.fields(Config))
#: The settings that fix a model's sizes: a snapshot or model file must
#: agree.
MODEL_KEYS = _names('model')
#: The settings a resumed run may change: how long it runs, how many
#: snapshots it keeps, and which of two bit-identical code paths computes it.
RESUMABLE_KEYS = _names('resumable')
#: Names of the sizes in files written before they took the VAE's names.
OLD_KEYS = {f.metadata['old_name']: f.name
            for f in dataclasses.fields(Config) if 'old_name' in f.metadata}
#: Settings added after runs were first recorded, with the value that every
#: run recorded without them had: ``ranks`` 1, one process.
ABSENT_MEANS = {f.name: f.metadata['absent_means']
                for f in dataclasses.fields(Config)
                if 'absent_means' in f.metadata}

#: ``{name: type}`` of :class:`Config`'s fields, from the annotations.
_TYPES = typing.get_type_hints(Config)
#: The types in words, for messages.
_TYPE_WORDS = {int: 'an integer', float: 'a number', bool: 'true or false',
               str: 'a string', Optional[str]: 'null or a string'}


def _fits(kind, value):
    """Whether ``value`` is of the annotated type ``kind``: an int counts as
    a float, a bool as neither an int nor a float."""
    if typing.get_origin(kind) is typing.Union:
        return any(_fits(k, value) for k in typing.get_args(kind))
    if kind in (int, float):
        return (isinstance(value, (int, float) if kind is float else int)
                and not isinstance(value, bool))
    return isinstance(value, kind)


def _as(kind, value):
    """``value`` (which fits ``kind``) as a ``kind``: an int as a float,
    one too large for a float as an infinity."""
    if kind is not float:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


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


def _default_settings():
    """The settings of ``configs/default.json``, which gives each of
    :class:`Config`'s fields a value of its type, in the order of the
    fields."""
    settings = read_config_file(DEFAULT_CONFIG)
    missing = [name for name in NAMES if name not in settings]
    unknown = sorted(set(settings) - set(NAMES))
    if missing or unknown:
        raise ConfigError('%s must give every setting of vae.config.Config '
                          'and no other; missing: %s; unknown: %s' % (
                              DEFAULT_CONFIG, ', '.join(missing) or 'none',
                              ', '.join(unknown) or 'none'))
    for key, value in settings.items():
        if not _fits(_TYPES[key], value):
            raise ConfigError('%s: %s must be %s, got %r' % (
                DEFAULT_CONFIG, key, _TYPE_WORDS[_TYPES[key]], value))
    return {name: _as(_TYPES[name], settings[name]) for name in NAMES}


def defaults():
    """The default configuration, a :class:`Config`."""
    return resolve()


def resolve(config_file=None, overrides=None):
    """Defaults, then ``config_file``, then the non-``None`` ``overrides``,
    as a :class:`Config`.

    Every key must be a setting, and every value must have its type (an int
    is accepted for a float; ``binarize`` takes a string or ``None``).
    """
    config = _default_settings()
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
    return Config(**config)


def check_values(config):
    """Raise :class:`ConfigError` naming every setting of the
    :class:`Config` ``config`` out of its range."""
    from vae.data.binarize import BINARIZE_MODES
    from vae.model import ACTIVATIONS
    problems = ['%s must be at least 1, got %r' % (f.name,
                                                   getattr(config, f.name))
                for f in dataclasses.fields(Config)
                if f.metadata['at_least_one'] and getattr(config, f.name) < 1]
    if not (config.alpha > 0 and math.isfinite(config.alpha)):
        problems.append('alpha must be positive and finite, got %r'
                        % config.alpha)
    if not (config.C >= 0 and math.isfinite(config.C)):
        problems.append('C must be finite and not negative, got %r'
                        % config.C)
    if not 0 <= config.seed < SEED_LIMIT:
        problems.append('seed must be in [0, 2**32), got %r' % config.seed)
    if config.activation not in ACTIVATIONS:
        problems.append('activation must be one of %s, got %r' % (
            ', '.join(sorted(ACTIVATIONS)), config.activation))
    if config.binarize not in (None,) + BINARIZE_MODES:
        problems.append('binarize must be null or one of %s, got %r' % (
            ', '.join(BINARIZE_MODES), config.binarize))
    if problems:
        raise ConfigError('; '.join(problems))


def _check_type(source, key, value, now):
    """``value`` from ``source`` for ``key`` as its field's type; the message
    shows the value ``now`` held as an example."""
    kind = _TYPES[key]
    if not _fits(kind, value):
        raise ConfigError('%s: %s must be like %r, got %r'
                          % (source, key, now, value))
    return _as(kind, value)
