"""A training run's folder (``--out``): its file names, its lock, its
snapshots and the leftovers of an interrupted run.

Scripts that only read a run's outputs (the figures, the evaluation) import
this module, not the trainer.
"""
import contextlib
import json
import os
import re
import shutil
import socket
import sys
import time

from vae import atomic

MODEL_FILE = 'model.npz'
CONFIG_FILE = 'config.json'
ENVIRONMENT_FILE = 'environment.json'
LOG_FILE = 'log'
LOSS_PLOT = 'loss.png'
GRAPH_DOT = 'cg.dot'
GRAPH_PNG = 'network.png'
LOCK_FILE = '.lock'
SNAPSHOT_PREFIX = 'snapshot_epoch_'

# Temporary folders of Chainer's own writers, which versions of this
# project before 0.2 used: snapshot_writers.SimpleWriter ('tmp' + the file
# name + mkdtemp's 8 characters).
_CHAINER_TEMPORARY = re.compile(r'^tmp%s\d+[a-z0-9_]{8}$' % SNAPSHOT_PREFIX)


class RunFolderError(RuntimeError):
    """The run folder is in use by another run, or cannot be used."""


def snapshot_name(epoch):
    """File name of the snapshot taken after ``epoch``."""
    return '%s%d' % (SNAPSHOT_PREFIX, epoch)


def snapshots(out):
    """``[(epoch, path), ...]`` of the snapshots in ``out``, by epoch."""
    if not os.path.isdir(out):
        return []
    found = []
    for name in os.listdir(out):
        suffix = name[len(SNAPSHOT_PREFIX):]
        if name.startswith(SNAPSHOT_PREFIX) and suffix.isdigit():
            found.append((int(suffix), os.path.join(out, name)))
    return sorted(found)


def latest_snapshot(out):
    """Path of the snapshot of the highest epoch in ``out``, or None."""
    found = snapshots(out)
    return found[-1][1] if found else None


def existing_outputs(out):
    """Names of the results in ``out`` that a failure leaves in place."""
    names = [os.path.basename(path) for _, path in snapshots(out)[-1:]]
    if os.path.exists(os.path.join(out, MODEL_FILE)):
        names.append(MODEL_FILE)
    return names


def remove_leftovers(out):
    """Remove what an interrupted run left in ``out``: this project's
    temporary files (:func:`vae.atomic.is_temporary`) and the temporary
    snapshot folders of Chainer's writer. Returns the names removed."""
    removed = atomic.remove_leftovers(out)
    for name in sorted(os.listdir(out)):
        path = os.path.join(out, name)
        if os.path.isdir(path) and _CHAINER_TEMPORARY.match(name):
            shutil.rmtree(path)
            removed.append(name)
    return sorted(removed)


@contextlib.contextmanager
def made_for_run(out):
    """Make the folder ``out`` if missing; where it was made here, remove
    it again if it is still empty when the ``with`` ends, so that a refused
    run leaves no empty ``--out`` behind."""
    made = not os.path.isdir(out)
    os.makedirs(out, exist_ok=True)
    try:
        yield out
    finally:
        if made:
            with contextlib.suppress(OSError):
                os.rmdir(out)  # only an empty folder


@contextlib.contextmanager
def lock(out):
    """Hold ``out`` for one run: an exclusive lock on ``out/.lock``.

    The lock is the kernel's (``flock``), so it dies with its process; the
    file says who holds it (PID, host, start time). A second run into the
    folder stops at once with :class:`RunFolderError` naming the holder. A
    lock file left by a process that died is taken over with a note.
    """
    import fcntl  # POSIX; imported here so that readers of this module
    # on other systems are not affected
    path = os.path.join(out, LOCK_FILE)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunFolderError(
                '%s is in use by another run (%s); wait for it to finish, '
                'or use another --out' % (out, holder))
        # the file may have been removed and made anew by a run that
        # finished meanwhile: then this lock guards nothing, try again
        if os.path.exists(path) and os.path.samestat(os.stat(path),
                                                      os.fstat(fd)):
            break
        os.close(fd)
    try:
        previous = _read_holder(fd)
        if previous:
            print('note: took over the lock of a run that ended without '
                  'releasing it (%s)' % previous, file=sys.stderr)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # _read_holder moved it to the end
        os.write(fd, json.dumps({
            'pid': os.getpid(), 'host': socket.gethostname(),
            'started': time.strftime('%Y-%m-%d %H:%M:%S')}).encode())
        yield
    finally:
        os.remove(path)
        os.close(fd)  # closing releases the lock


def _read_holder(fd):
    """The holder recorded in an open lock file, in words ('' if none)."""
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode(errors='replace')
    if not text:
        return ''
    try:
        info = json.loads(text)
        return 'PID %s on %s since %s' % (info['pid'], info['host'],
                                          info['started'])
    except (ValueError, KeyError, TypeError):
        return 'an unreadable lock file %r' % text[:80]
