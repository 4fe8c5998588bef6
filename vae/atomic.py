"""Atomic writes: a file is either its old self or completely new.

Every output of the project goes through :func:`atomic_path`: the data are
written to a temporary file beside the target, which then replaces the
target in one rename. A crash, a kill or a full disk leaves the previous
file untouched; the only debris a kill -9 can leave is the temporary file,
whose name :func:`is_temporary` recognises so that a later run can remove
it.
"""
import contextlib
import os
import re
import sys
import tempfile
import zipfile

import numpy

# mkstemp's names: '.' + target's stem + '.' + 8 random characters + '.tmp'
# + target's extension
_TEMPORARY = re.compile(r'^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$')


class WriteError(OSError):
    """An output could not be written; the message names the file."""

    def __str__(self):
        return self.strerror  # the message, without OSError's [Errno N]


def is_temporary(name, target=None):
    """True for the name of a temporary file :func:`atomic_path` makes
    (for the file named ``target``, where given)."""
    if target is None:
        return bool(_TEMPORARY.match(name))
    root, ext = os.path.splitext(os.path.basename(target))
    return bool(re.match(r'^\.%s\.[a-z0-9_]{8}\.tmp%s$'
                         % (re.escape(root), re.escape(ext)), name))


def remove_leftovers(folder, targets=None):
    """Remove the temporary files that interrupted writes (a kill -9) left
    in ``folder``: all of them, or those of the files named ``targets``.
    Returns the names removed."""
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and (
                is_temporary(name) if targets is None else
                any(is_temporary(name, target) for target in targets)):
            os.remove(path)
            removed.append(name)
    return removed


def prepare_outputs(folder, names=None):
    """Before the work whose results go to ``folder``: check that it can
    be written (:func:`writable_folder`) and remove what interrupted writes
    of the files ``names`` (of any file, where ``None``) left there, saying
    so in one line on stderr. Returns ``folder``.

    Raises:
        WriteError: naming the folder and why.
    """
    writable_folder(folder)
    removed = remove_leftovers(folder, names)
    if removed:
        print('removed what an interrupted write left in %s: %s'
              % (folder, ', '.join(removed)), file=sys.stderr)
    return folder


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; move it into place on success.

    A crash or an exception leaves any previous file at ``path`` untouched
    and no temporary file behind. An ``OSError`` (a full disk, a read-only
    folder) comes out as :class:`WriteError` naming ``path``.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    root, ext = os.path.splitext(os.path.basename(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % root,
                                   suffix='.tmp' + ext, dir=directory)
        os.close(fd)
        yield tmp
        # mkstemp makes the file private (0600); give it the usual mode
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as e:
        if isinstance(e, WriteError):
            raise
        raise WriteError(e.errno, 'cannot write %s: %s'
                         % (path, e.strerror or e)) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def writable_folder(folder):
    """Check that files can be made in ``folder``, before any work whose
    results would go there; returns ``folder``. Nothing is created: a
    missing folder is checked where it would be made (the nearest folder
    above it that exists), and :func:`atomic_path` makes it on writing.

    Raises:
        WriteError: naming the folder and why.
    """
    try:
        existing = os.path.abspath(folder)
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):
            raise NotADirectoryError(20, 'a file is in the way: %s'
                                     % existing)
        fd, probe = tempfile.mkstemp(prefix='.write-check.', dir=existing)
        os.close(fd)
        os.remove(probe)
    except OSError as e:
        raise WriteError(e.errno, 'cannot write into %s: %s'
                         % (folder, e.strerror or e)) from None
    return folder


def output_file(out, default_name):
    """The file an ``--out`` names, checked before the work starts.

    ``out`` is a file, or a folder (an existing one, or any path ending in
    a slash) to hold ``default_name``; missing folders are made when the
    file is written.

    Leftovers of interrupted writes of that file are removed
    (:func:`prepare_outputs`).

    Raises:
        WriteError: The folder cannot be written.
    """
    out = os.fspath(out)
    if out.endswith(('/', os.sep)) or os.path.isdir(out):
        out = os.path.join(out, default_name)
    prepare_outputs(os.path.dirname(os.path.abspath(out)),
                    [os.path.basename(out)])
    return out


def write_text(path, text):
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write(text)


def save_npz(path, arrays):
    """Write a dict of arrays as an uncompressed ``.npz`` atomically.

    The file is what ``numpy.savez`` writes (one ``NAME.npy`` entry per
    array, zip64 headers), written here so that the zip file is closed
    whatever happens: NumPy 1's ``savez`` leaves it open when a write fails
    (a full disk), and its ``__del__`` later prints "Exception ignored in
    ZipFile.__del__ ... seek of closed file" after the error line.
    """
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f, zipfile.ZipFile(
                f, 'w', zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name, value in arrays.items():
                with archive.open(name + '.npy', 'w',
                                  force_zip64=True) as entry:
                    numpy.lib.format.write_array(entry,
                                                 numpy.asanyarray(value))


def save_png(fig, path, dpi=100):
    """Save a matplotlib ``Figure`` as a PNG atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format='png', dpi=dpi)
    return path


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
