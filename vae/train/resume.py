"""Continuing a run: which snapshot, whether it fits, and loading it safely.

A snapshot is an ``.npz`` file that ``chainer.serializers.load_npz`` would
read with pickles allowed, so that a crafted file could run code on
``--resume``. Here a snapshot is opened with pickles refused, and every
entry's header is read before Chainer deserializes anything: an entry that
holds Python objects is refused by name.

Settings. A run in ``--out`` may be continued only with its own settings
(those in :data:`vae.config.RESUMABLE_KEYS` may change). A snapshot given
with ``--resume`` carries the settings of the run that wrote it (or has its
run's ``config.json`` beside it); the requested settings must agree with
them the same way.
"""
import contextlib
import json
import os
import zipfile
import zlib

import numpy
from chainer import serializers

from vae import config as config_lib
from vae.train import run_folder
from vae.train.extensions import SNAPSHOT_CONFIG_KEY


#: Entry of a snapshot holding the epoch its run had reached.
EPOCH_KEY = 'updater/iterator:main/epoch'


#: What to do about a damaged snapshot, appended to the message.
_DAMAGED_FIX = ('; delete it to continue from an earlier snapshot (or '
                'name one with --resume), or start afresh in another --out')


class ResumeError(ValueError):
    """A snapshot or earlier run in ``--out`` does not fit the request."""


def object_entries(path):
    """Names of the entries of an ``.npz`` file that hold Python objects
    (which only unpickling can read), from their headers alone."""
    found = []
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            with archive.open(info) as f:
                version = numpy.lib.format.read_magic(f)
                read_header = (numpy.lib.format.read_array_header_1_0
                               if version == (1, 0) else
                               numpy.lib.format.read_array_header_2_0)
                _, _, dtype = read_header(f)
            if dtype.hasobject:
                name = info.filename
                found.append(name[:-4] if name.endswith('.npy') else name)
    return found


@contextlib.contextmanager
def open_snapshot(path):
    """The snapshot at ``path`` (or in the binary file object ``path``, as
    the other ranks of a run get it from rank 0) as an ``NpzFile`` that
    refuses pickles.

    Raises:
        ResumeError: The file is missing, not an ``.npz`` archive, or holds
            Python objects (the message names the file and the entry).
    """
    is_file = hasattr(path, 'read')
    if not is_file and not os.path.isfile(path):
        raise ResumeError('snapshot not found: %s' % path)
    try:
        unsafe = object_entries(path)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError,
            zlib.error) as e:
        raise ResumeError('%s is not a readable snapshot (%s)%s'
                          % (path, e, _DAMAGED_FIX))
    if unsafe:
        raise ResumeError(
            '%s holds Python objects in %s, which loading would unpickle '
            '(and could run code); it is refused, and nothing was loaded'
            % (path, ', '.join(unsafe)))
    if is_file:
        path.seek(0)
    with numpy.load(path, allow_pickle=False) as npz:
        try:
            yield npz
        except (zipfile.BadZipFile, EOFError, zlib.error) as e:
            raise ResumeError('%s is damaged (%s)%s'
                              % (path, e, _DAMAGED_FIX)) from None


def recorded_config(npz, path):
    """The settings of the run that wrote a snapshot: stored in it, else
    its run's ``config.json`` beside it, else None."""
    if SNAPSHOT_CONFIG_KEY in npz.files:
        try:
            stored = json.loads(str(npz[SNAPSHOT_CONFIG_KEY]))
        except ValueError as e:
            stored = e
        if not isinstance(stored, dict):
            raise ResumeError('snapshot %s holds unreadable settings in %s '
                              '(%s)%s' % (path, SNAPSHOT_CONFIG_KEY,
                                          stored if isinstance(
                                              stored, ValueError)
                                          else 'not a JSON object',
                                          _DAMAGED_FIX))
        # the sizes under their names since the rename, as in config files
        return {config_lib.OLD_KEYS.get(key, key): value
                for key, value in stored.items()}
    beside = os.path.join(os.path.dirname(os.path.abspath(path)),
                          run_folder.CONFIG_FILE)
    if os.path.isfile(beside):
        return config_lib.read_config_file(beside)
    return None


def settings_differences(previous, config):
    """``'key=old there, new now'`` for each setting that a continued run
    may not change (a key that ``previous`` lacks counts as
    :data:`vae.config.ABSENT_MEANS` says)."""
    previous = dict(config_lib.ABSENT_MEANS, **previous)
    now = config.as_dict()
    return ['%s=%r there, %r now' % (key, previous[key], now[key])
            for key in sorted(now)
            if key in previous and key not in config_lib.RESUMABLE_KEYS
            and previous[key] != now[key]]


def _refuse(where, previous, config, diffs, fix):
    kind = ('another model' if any(
        key in previous and previous[key] != getattr(config, key)
        for key in config_lib.MODEL_KEYS) else 'other settings')
    raise ResumeError('%s holds a run of %s (%s); it cannot be continued '
                      'with these settings, and it is left untouched. %s'
                      % (where, kind, '; '.join(diffs), fix))


def check_previous_run(out, config):
    """Refuse to continue a run in ``out`` made with other settings.

    Nothing in ``out`` is touched.
    """
    path = os.path.join(out, run_folder.CONFIG_FILE)
    has_work = (run_folder.latest_snapshot(out) is not None
                or os.path.exists(os.path.join(out, run_folder.MODEL_FILE)))
    if not os.path.exists(path) or not has_work:
        return
    previous = config_lib.read_config_file(path)
    diffs = settings_differences(previous, config)
    if diffs:
        _refuse(out, previous, config, diffs, 'Use another --out, or the '
                'same settings to continue it.')


def check_snapshot(path, model, config, explicit_config=False):
    """Raise :class:`ResumeError` unless the snapshot at ``path`` is safe,
    its weights fit ``model`` and its run's settings are ``config``'s;
    return the number of epochs it holds.

    Where no record of its settings exists (a snapshot written by Chainer's
    own writer away from its run folder), it is accepted only when the
    caller says the settings were given explicitly (``--config``).
    """
    with open_snapshot(path) as npz:
        shapes = {key: npz[key].shape for key in npz.files
                  if key.startswith('updater/model:main/')}
        previous = recorded_config(npz, path)
        epoch = snapshot_epoch(npz, path)
    diffs = []
    for name, param in sorted(model.namedparams()):
        key = 'updater/model:main' + name
        if key not in shapes:
            diffs.append('%s missing' % name)
        elif shapes[key] != param.shape:
            diffs.append('%s is %s there, %s here'
                         % (name, shapes[key], param.shape))
    if diffs:
        raise ResumeError(
            'snapshot %s does not fit the model (n_in, n_latent, n_h) = '
            '(%d, %d, %d): %s' % (path, model.n_in, model.n_latent,
                                  model.n_h, '; '.join(diffs)))
    if previous is None:
        if not explicit_config:
            raise ResumeError(
                'snapshot %s carries no record of the settings it was '
                'trained with (none inside, no %s beside it); to continue '
                'it, name them with --config FILE' % (path,
                                                    run_folder.CONFIG_FILE))
        return epoch
    diffs = settings_differences(previous, config)
    if diffs:
        _refuse('snapshot %s' % path, previous, config, diffs,
                'Pass the settings it was trained with.')
    return epoch


def snapshot_epoch(npz, path):
    """The number of epochs a snapshot's run had finished."""
    try:
        epoch = npz[EPOCH_KEY]
    except KeyError:
        raise ResumeError('snapshot %s records no epoch (%s); it is not a '
                          "trainer's snapshot" % (path, EPOCH_KEY))
    if epoch.shape != () or epoch.dtype.kind not in 'iu' or epoch < 0:
        raise ResumeError('snapshot %s records a bad epoch %r in %s'
                          % (path, epoch, EPOCH_KEY))
    return int(epoch)


def finished_note(where, epoch, config):
    """The line a rerun of a run finished at ``epoch`` prints, or ``None``
    where the requested ``config.epoch`` asks for more training."""
    if epoch < config.epoch:
        return None
    return ('%s has finished %d epochs, and --epoch %d asks for no more; '
            'nothing was trained or written. To train longer, raise --epoch'
            % (where, epoch, config.epoch))


def load_snapshot(path, trainer):
    """Restore ``trainer`` from the snapshot at ``path``, pickles refused."""
    with open_snapshot(path) as npz:
        # extensions added since the snapshot was written start afresh
        missing_trigger = (lambda key: key.startswith('extension_triggers/')
                           and key not in npz)
        try:
            serializers.NpzDeserializer(
                npz, ignore_names=missing_trigger).load(trainer)
        except (KeyError, ValueError, TypeError) as e:
            raise ResumeError('cannot resume from %s: %s' % (path, e))
