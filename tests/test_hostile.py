"""What a careless or hostile user can do, and the one line each gets.

Every case ends in one line on stderr that names the file or the setting
and what to do, a non-zero exit, and nothing written or changed before the
refusal; a finished run stays finished; Ctrl-C and SIGTERM say where
training stopped. (The cases the trust issue fixed are in
test_reliability.py.)
"""
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy
import pytest

from testutil import ROOT, assert_one_line_error, command, interrupt_at
from vae.train import run_folder

train_script = command('train')

SMALL = ['--test', '--n-hidden', '16', '-z', '2', '--no-progress']


def train(out, mnist_dir, *extra):
    return train_script.main(SMALL + ['--data-dir', mnist_dir, '-o',
                                      str(out)] + list(extra))


def epochs_in_log(out):
    return [entry['epoch'] for entry in
            json.loads((out / run_folder.LOG_FILE).read_text())]


def folder_state(folder):
    """Every file below ``folder`` with its bytes and modification time."""
    state = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                state[path] = (f.read(), os.stat(path).st_mtime_ns)
    return state


@pytest.fixture(scope='module')
def finished_run(tmp_path_factory, mnist_dir):
    """A run folder trained to epoch 2, and its state."""
    out = tmp_path_factory.mktemp('finished') / 'run'
    assert train(out, mnist_dir, '-e', '2') == 0
    return out


# --- a finished run stays finished -----------------------------------------

@pytest.mark.parametrize('epochs', ['2', '1'])
def test_a_rerun_of_a_finished_run_changes_nothing(
        tmp_path, mnist_dir, capsys, epochs):
    out = tmp_path / 'run'
    assert train(out, mnist_dir, '-e', '2') == 0
    capsys.readouterr()
    before = folder_state(out)
    assert train(out, mnist_dir, '-e', epochs) == 0
    captured = capsys.readouterr()
    assert captured.out == ('%s has finished 2 epochs, and --epoch %s asks '
                            'for no more; nothing was trained or written. '
                            'To train longer, raise --epoch\n' % (out, epochs))
    assert captured.err == ''
    assert folder_state(out) == before


def test_a_larger_epoch_continues_to_exactly_that_epoch(
        tmp_path, mnist_dir):
    out = tmp_path / 'run'
    assert train(out, mnist_dir, '-e', '2') == 0
    # an interval trigger (2, 'epoch') resumed at 2 with --epoch 3 would
    # stop at 6, the next multiple of 3
    assert train(out, mnist_dir, '-e', '3') == 0
    assert epochs_in_log(out) == [1, 2, 3]
    assert [e for e, _ in run_folder.snapshots(out)] == [1, 2, 3]


def test_resume_from_a_snapshot_past_the_epoch_changes_nothing(
        tmp_path, finished_run, mnist_dir, capsys):
    out = tmp_path / 'other'
    assert train(out, mnist_dir, '-e', '2', '--resume',
                 str(finished_run / 'snapshot_epoch_2')) == 0
    assert 'has finished 2 epochs' in capsys.readouterr().out
    assert not out.exists()


# --- the run folder ---------------------------------------------------------

def test_a_lock_taken_over_is_rewritten_from_its_start(tmp_path):
    out = tmp_path / 'run'
    out.mkdir()
    (out / run_folder.LOCK_FILE).write_text(json.dumps(
        {'pid': 999999, 'host': 'elsewhere', 'started': '2026-01-01'}))
    with run_folder.lock(str(out)):
        text = (out / run_folder.LOCK_FILE).read_text()
        assert json.loads(text)['pid'] == os.getpid()  # no NULs before it


def test_a_refused_resume_leaves_no_empty_out(tmp_path, mnist_dir):
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'new', mnist_dir, '--resume',
              str(tmp_path / 'missing'))
    assert_one_line_error(info, 'snapshot not found')
    assert not (tmp_path / 'new').exists()


# --- config files -----------------------------------------------------------

def test_a_size_given_under_both_names_names_both(tmp_path, mnist_dir):
    config = tmp_path / 'both.json'
    config.write_text('{"dim_z": 2, "n_latent": 3}')
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'run', mnist_dir, '--config', str(config))
    assert_one_line_error(info, 'gives n_latent twice (as dim_z and '
                          'n_latent); keep one')
    assert not (tmp_path / 'run').exists()


def test_a_config_that_is_a_device_is_refused(tmp_path, mnist_dir):
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'run', mnist_dir, '--config', os.devnull)
    assert_one_line_error(info, 'config file %s is not a regular file'
                          % os.devnull)


def test_a_huge_config_is_refused(tmp_path, mnist_dir):
    config = tmp_path / 'huge.json'
    config.write_text('{"_comment": "%s"}' % ('x' * (1 << 20)))
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'run', mnist_dir, '--config', str(config))
    assert_one_line_error(info, 'is larger than 1048576 bytes')


# --- damaged snapshots ------------------------------------------------------

def rewrite_entry(path, name, data):
    """Replace the bytes of entry ``name`` of the zip ``path``."""
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, 'w') as archive:
        for info, content in entries:
            archive.writestr(info, data if info.filename == name
                             else content)


def flip_a_byte_of(path, name):
    """Damage entry ``name`` of the zip ``path`` so that its CRC fails."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    with open(path, 'r+b') as f:
        # past the local header (30 bytes, the name, no extra field here)
        f.seek(info.header_offset + 30 + len(name) + 200)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xff]))


def settings_entry(text):
    import io
    buffer = io.BytesIO()
    numpy.lib.format.write_array(buffer, numpy.array(text))
    return buffer.getvalue()


@pytest.mark.parametrize('damage, message', [
    (lambda path: flip_a_byte_of(path, 'updater/model:main/le1/W.npy'),
     'is damaged (Bad CRC-32'),
    (lambda path: rewrite_entry(path, '_vae_config.npy',
                                settings_entry('{"n_h": ')),
     'holds unreadable settings in _vae_config (Expecting value'),
    (lambda path: rewrite_entry(path, '_vae_config.npy',
                                settings_entry('[1, 2]')),
     'holds unreadable settings in _vae_config (not a JSON object)'),
])
def test_a_damaged_snapshot_is_named_in_one_line(
        tmp_path, finished_run, mnist_dir, damage, message):
    snapshot = tmp_path / 'snapshot'
    snapshot.write_bytes((finished_run / 'snapshot_epoch_2').read_bytes())
    damage(str(snapshot))
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'run', mnist_dir, '-e', '3', '--resume',
              str(snapshot))
    assert_one_line_error(info, message)
    assert 'delete it to continue from an earlier snapshot' in str(
        info.value.code)
    assert not (tmp_path / 'run').exists()


# --- several processes ------------------------------------------------------

@pytest.mark.parametrize('variable', ['OMPI_COMM_WORLD_SIZE', 'PMI_SIZE'])
def test_a_launch_of_several_processes_needs_the_communicator(
        tmp_path, mnist_dir, monkeypatch, variable):
    monkeypatch.setenv(variable, '2')
    with pytest.raises(SystemExit) as info:
        train(tmp_path / 'run', mnist_dir)
    assert_one_line_error(info, 'one of 2 processes started by an MPI '
                          'launcher (%s=2) but --communicator is not given'
                          % variable)
    assert not (tmp_path / 'run').exists()


def test_one_launched_process_runs_alone(monkeypatch):
    from vae import parallel
    monkeypatch.setenv('PMI_SIZE', '1')
    assert parallel.create_communicator(None) is None


# --- Ctrl-C and SIGTERM -----------------------------------------------------

def test_ctrl_c_says_where_training_stopped(tmp_path, mnist_dir,
                                            monkeypatch):
    out = tmp_path / 'run'
    interrupt_at(monkeypatch, 25)  # in epoch 3: 10 iterations an epoch
    with pytest.raises(SystemExit) as info:
        train(out, mnist_dir, '-e', '3')
    assert_one_line_error(info, 'training stopped by Ctrl-C at epoch 2.40 '
                          '(iteration 24); what it had written is intact: '
                          'snapshot_epoch_2, model.npz. Run the same command '
                          'to resume')


def test_sigterm_says_where_training_stopped(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    process = subprocess.Popen(
        [sys.executable, str(ROOT / 'scripts' / 'train.py')] + SMALL
        + ['--data-dir', mnist_dir, '-o', str(out), '-e', '50'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while not (out / 'snapshot_epoch_1').exists():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    lines = [line for line in err.splitlines()
             if not line.startswith('note: Graphviz')]
    assert len(lines) == 1, err
    assert lines[0].startswith('error: training stopped by SIGTERM at epoch ')
    assert lines[0].endswith('Run the same command to resume')
    assert not (out / run_folder.LOCK_FILE).exists()


# --- sizes beyond the machine, bad numbers, damaged and NaN models ----------

@pytest.mark.parametrize('flags', [['--n-hidden', '100000000'],
                                   ['--k', '1000000']])
def test_training_beyond_the_memory_is_refused_first(
        tmp_path, mnist_dir, flags):
    with pytest.raises(SystemExit) as info:
        train_script.main(['--test', '--no-progress', '--data-dir',
                           mnist_dir, '-o', str(tmp_path / 'run')] + flags)
    assert_one_line_error(info, 'of memory, more than the')
    assert not (tmp_path / 'run').exists()


def model_with_meta(path, **meta):
    from vae import VAE
    from vae.train.model_files import save_model
    save_model(path, VAE(784, 2, 8))
    with numpy.load(path) as npz:
        arrays = dict(npz)
    stored = json.loads(str(arrays['_vae_meta']))
    stored.update(meta)
    arrays['_vae_meta'] = numpy.array(json.dumps(stored))
    numpy.savez(path, **arrays)
    return path


@pytest.mark.parametrize('value', [-3, '50', 50.0, 10 ** 9])
def test_bad_recorded_sizes_are_refused(tmp_path, value):
    from vae.train.model_files import ModelFileError, load_model
    path = model_with_meta(tmp_path / 'model.npz', n_h=value)
    with pytest.raises(ModelFileError, match='unreadable model metadata'):
        load_model(str(path))


def test_a_model_with_nan_weights_is_refused(tmp_path):
    from vae import VAE
    from vae.train.model_files import ModelFileError, load_model, save_model
    model = VAE(784, 2, 8)
    model.ld3.b.array[0] = numpy.nan
    save_model(tmp_path / 'model.npz', model)
    with pytest.raises(ModelFileError, match=r'NaN or infinite \(ld3/b\)'):
        load_model(str(tmp_path / 'model.npz'))


@pytest.mark.parametrize('script, seed', [('evaluate', '-1'),
                                          ('plot_latent', '4294967296')])
def test_a_seed_out_of_range_is_refused(script, seed, capsys):
    with pytest.raises(SystemExit) as info:
        command(script).main(['-m', 'x.npz', '--seed', seed])
    assert info.value.code == 2
    assert 'must be in [0, 2**32)' in capsys.readouterr().err


@pytest.mark.parametrize('opset', ['0', '-1', '999'])
def test_an_opset_onnx_chainer_does_not_write_is_refused(tmp_path, opset):
    with pytest.raises(SystemExit) as info:
        command('export_onnx').main(['-m', 'x.npz', '-o',
                                         str(tmp_path / 'o'), '--opset',
                                         opset])
    assert_one_line_error(info, 'choose one of 7 to 11')
    assert not (tmp_path / 'o').exists()


def test_a_writer_removes_its_own_leftovers(tmp_path, capsys):
    from vae import atomic
    mine = tmp_path / '.index.ab12cd34.tmp.html'
    other = tmp_path / '.notes.ab12cd34.tmp.txt'
    mine.write_text('')
    other.write_text('')
    atomic.prepare_outputs(str(tmp_path), ['index.html'])
    assert not mine.exists() and other.exists()
    assert 'removed what an interrupted write left' in capsys.readouterr().err


def test_a_one_dimensional_latent_skips_tsne(capsys):
    plan = command('plot_latent').plan_figures(['tsne', 'prior'], 1)
    assert plan == ['prior']
    assert 'skipped tsne' in capsys.readouterr().out
