"""vae/atomic.py: atomic writes, the names of their temporary files, the
output paths of the commands, and a full disk."""
import errno
import os

import pytest

from testutil import full_disk
from vae import VAE, atomic
from vae.atomic import atomic_path
from vae.train.model_files import save_model


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    path = tmp_path / 'out.txt'
    path.write_text('good')
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            with open(tmp, 'w') as f:
                f.write('half')
            raise RuntimeError('crash while writing')
    assert path.read_text() == 'good'
    assert os.listdir(tmp_path) == ['out.txt']  # no temporary left behind
    with atomic_path(path) as tmp:
        with open(tmp, 'w') as f:
            f.write('new')
    assert path.read_text() == 'new'
    assert os.listdir(tmp_path) == ['out.txt']
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask  # not 0600


def test_a_failed_write_names_the_file_and_keeps_the_old_one(
        tmp_path, monkeypatch):
    path = tmp_path / 'model.npz'
    save_model(path, VAE(8, 2, 4))
    good = path.read_bytes()

    # the disk fills up 100 bytes into the new file
    monkeypatch.setattr(atomic, 'open', full_disk('model', 100),
                        raising=False)
    with pytest.raises(atomic.WriteError) as info:
        save_model(path, VAE(8, 2, 4))
    assert str(info.value) == ('cannot write %s: No space left on device'
                               % path)
    assert info.value.errno == errno.ENOSPC
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ['model.npz']


def test_is_temporary_knows_the_names_atomic_path_makes(tmp_path):
    names = []
    for target in ('model.npz', 'config.json', 'log', 'snapshot_epoch_12'):
        with atomic_path(tmp_path / target) as tmp:
            names.append(os.path.basename(tmp))
            open(tmp, 'w').close()
    assert all(atomic.is_temporary(name) for name in names), names
    for name in ('model.npz', 'log', '.lock', 'snapshot_epoch_3',
                 '.model.npz', 'notes.tmp', '.bashrc'):
        assert not atomic.is_temporary(name), name


@pytest.mark.parametrize('given,expected', [
    ('res.json', 'res.json'),
    ('new/', 'new/evaluation.json'),
    ('a/b/res.json', 'a/b/res.json'),
])
def test_output_file_reads_a_slash_as_a_folder_and_writes_nothing(
        tmp_path, given, expected):
    path = atomic.output_file(str(tmp_path / given) + (
        '/' if given.endswith('/') else ''), 'evaluation.json')
    assert path == str(tmp_path / expected)
    assert os.listdir(tmp_path) == []  # nothing made yet
    atomic.write_text(path, '{}')  # makes the missing folders
    assert os.path.isfile(path)
    existing = tmp_path / 'existing'
    existing.mkdir()
    assert atomic.output_file(str(existing), 'x.json') == str(
        existing / 'x.json')


def test_output_file_refuses_what_cannot_be_written(tmp_path):
    blocker = tmp_path / 'file'
    blocker.write_text('')
    with pytest.raises(atomic.WriteError, match='cannot write into .*file'):
        atomic.output_file(str(blocker / 'res.json'), 'x.json')
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / 'locked'
        locked.mkdir()
        locked.chmod(0o500)
        with pytest.raises(atomic.WriteError, match='cannot write into'):
            atomic.output_file(str(locked / 'res.json'), 'x.json')
