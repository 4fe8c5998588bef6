"""What a careless or hostile user can do, and the one line each gets.

Every case ends in one line on stderr that names the file or the setting
and what to do, a non-zero exit, and nothing written or changed before the
refusal; a finished run stays finished; Ctrl-C and SIGTERM say where
training stopped. (The cases the trust issue fixed are in
tests/train/test_reliability.py.)
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

from testutil import (BAD_MODEL_FILES, ROOT, SMALL_RUN, assert_one_line_error,
                      command, interrupt_at, train_in_background,
                      train_small)
from vae.train import run_folder

train_script = command('train')


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
    assert train_small(out, mnist_dir, '-e', '2') == 0
    return out


# --- a finished run stays finished -----------------------------------------

@pytest.mark.parametrize('epochs', ['2', '1'])
def test_a_rerun_of_a_finished_run_changes_nothing(
        tmp_path, mnist_dir, capsys, epochs):
    out = tmp_path / 'run'
    assert train_small(out, mnist_dir, '-e', '2') == 0
    capsys.readouterr()
    before = folder_state(out)
    assert train_small(out, mnist_dir, '-e', epochs) == 0
    captured = capsys.readouterr()
    assert captured.out == ('%s has finished 2 epochs, and --epoch %s asks '
                            'for no more; nothing was trained or written. '
                            'To train longer, raise --epoch\n' % (out, epochs))
    assert captured.err == ''
    assert folder_state(out) == before


def test_a_larger_epoch_continues_to_exactly_that_epoch(
        tmp_path, mnist_dir):
    out = tmp_path / 'run'
    assert train_small(out, mnist_dir, '-e', '2') == 0
    # the other side of a finished run: a larger --epoch still trains, to
    # exactly that epoch (the reruns that must not train are tested above)
    assert train_small(out, mnist_dir, '-e', '3') == 0
    assert epochs_in_log(out) == [1, 2, 3]
    assert [e for e, _ in run_folder.snapshots(out)] == [1, 2, 3]


def test_resume_from_a_snapshot_past_the_epoch_changes_nothing(
        tmp_path, finished_run, mnist_dir, capsys):
    out = tmp_path / 'other'
    assert train_small(out, mnist_dir, '-e', '2', '--resume',
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
        train_small(tmp_path / 'new', mnist_dir, '--resume',
              str(tmp_path / 'missing'))
    assert_one_line_error(info, 'snapshot not found')
    assert not (tmp_path / 'new').exists()


# --- config files -----------------------------------------------------------

def test_a_size_given_under_both_names_names_both(tmp_path, mnist_dir):
    config = tmp_path / 'both.json'
    config.write_text('{"dim_z": 2, "n_latent": 3}')
    with pytest.raises(SystemExit) as info:
        train_small(tmp_path / 'run', mnist_dir, '--config', str(config))
    assert_one_line_error(info, 'gives n_latent twice (as dim_z and '
                          'n_latent); keep one')
    assert not (tmp_path / 'run').exists()


def test_a_config_that_is_a_device_is_refused(tmp_path, mnist_dir):
    with pytest.raises(SystemExit) as info:
        train_small(tmp_path / 'run', mnist_dir, '--config', os.devnull)
    assert_one_line_error(info, 'config file %s is not a regular file'
                          % os.devnull)


def test_a_huge_config_is_refused(tmp_path, mnist_dir):
    config = tmp_path / 'huge.json'
    config.write_text('{"_comment": "%s"}' % ('x' * (1 << 20)))
    with pytest.raises(SystemExit) as info:
        train_small(tmp_path / 'run', mnist_dir, '--config', str(config))
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
        train_small(tmp_path / 'run', mnist_dir, '-e', '3', '--resume',
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
        train_small(tmp_path / 'run', mnist_dir)
    assert_one_line_error(info, 'one of 2 processes started by an MPI '
                          'launcher (%s=2) but --communicator is not given'
                          % variable)
    assert not (tmp_path / 'run').exists()


def test_one_launched_process_runs_alone(monkeypatch):
    from vae import parallel
    monkeypatch.setenv('PMI_SIZE', '1')
    assert parallel.create_ranks(None) is parallel.ONE_PROCESS


# --- Ctrl-C and SIGTERM -----------------------------------------------------

def test_ctrl_c_says_where_training_stopped(tmp_path, mnist_dir,
                                            monkeypatch):
    out = tmp_path / 'run'
    interrupt_at(monkeypatch, 25)  # in epoch 3: 10 iterations an epoch
    with pytest.raises(SystemExit) as info:
        train_small(out, mnist_dir, '-e', '3')
    assert_one_line_error(info, 'training stopped by Ctrl-C at epoch 2.40 '
                          '(iteration 24); what it had written is intact: '
                          'snapshot_epoch_2, model.npz. Run the same command '
                          'to resume')


def test_sigterm_says_where_training_stopped(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    process = train_in_background(out, mnist_dir, 50,
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
    try:
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


@pytest.mark.parametrize('value', ['1e9', '"50"'])
def test_sizes_that_json_reads_as_a_float_or_a_string_are_refused(
        tmp_path, value):
    from vae.train.model_files import ModelFileError, load_model
    path = model_with_meta(tmp_path / 'model.npz', n_h=0)
    with numpy.load(path) as npz:
        arrays = dict(npz)
    # the text as a hand-edited or foreign file holds it: 1e9 is a float
    text = str(arrays['_vae_meta']).replace('"n_h": 0', '"n_h": ' + value)
    arrays['_vae_meta'] = numpy.array(text)
    numpy.savez(path, **arrays)
    with pytest.raises(ModelFileError, match='n_h is .*, not a positive '
                       'integer'):
        load_model(str(path))


# --- every reader of model files --------------------------------------------

def tiny_model(folder, n_latent=2):
    from vae import VAE
    from vae.train.model_files import save_model
    numpy.random.seed(0)
    path = folder / 'model.npz'
    save_model(path, VAE(784, n_latent, 8))
    return path


@pytest.mark.parametrize('make, message', BAD_MODEL_FILES)
def test_evaluate_refuses_a_bad_model_file_in_one_line(
        tmp_path, make, message):
    # plot_latent, export_web and export_onnx: the same list in their tests
    path = make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(SystemExit) as info:
        command('evaluate').main(['--model', str(path), '--no-progress'])
    assert_one_line_error(info, message)
    assert sorted(os.listdir(tmp_path)) == before


def test_an_onnx_newer_than_chainers_exporter_reads_is_named(
        tmp_path, monkeypatch):
    import types
    model = tiny_model(tmp_path)
    # onnx 1.19 removed onnx.mapping, which onnx_chainer reads on import
    monkeypatch.setitem(sys.modules, 'onnx',
                        types.SimpleNamespace(__version__='1.19.0'))
    with pytest.raises(SystemExit) as info:
        command('export_onnx').main(['-m', str(model), '-o',
                                         str(tmp_path / 'onnx')])
    assert_one_line_error(info, 'onnx 1.19.0 is too new for Chainer\'s '
                          'exporter, which reads onnx.mapping (gone after '
                          'onnx 1.18.0): pip install onnx==1.18.0')
    assert not (tmp_path / 'onnx').exists()


def test_evaluate_writes_a_result_that_is_not_a_number_as_null(
        tmp_path, mnist_dir, monkeypatch):
    script = command('evaluate')
    model = tiny_model(tmp_path)
    original = script.estimators.evaluate

    def diverging(*args, **kwargs):
        result = original(*args, **kwargs)
        result.update(neg_log_likelihood=float('nan'), kl=float('inf'))
        return result

    monkeypatch.setattr(script.estimators, 'evaluate', diverging)
    out = tmp_path / 'result.json'
    assert script.main(['-m', str(model), '--data-dir', mnist_dir,
                        '--limit', '10', '--iw-samples', '5',
                        '--no-progress', '-o', str(out)]) == 0

    def refuse(constant):
        raise AssertionError('%s in the JSON' % constant)

    result = json.loads(out.read_text(), parse_constant=refuse)
    assert result['neg_log_likelihood'] is None and result['kl'] is None
    assert isinstance(result['neg_elbo'], float)


def test_plot_latent_of_a_one_dimensional_model_makes_the_rest(
        tmp_path, mnist_dir, capsys):
    model = tiny_model(tmp_path, n_latent=1)
    assert command('plot_latent').main([
        '-m', str(model), '--data-dir', mnist_dir, '--only', 'tsne',
        'prior', '--no-progress']) == 0
    figures = tmp_path / 'figures'
    assert (figures / 'prior_samples.png').is_file()
    assert not (figures / 'tsne.png').exists()
    assert 'skipped tsne' in capsys.readouterr().out


@pytest.mark.parametrize('flags, size', [
    (['--k', '10000000'], '--k 10000000 and --iw-chunk 100'),
    (['--iw-samples', '1000000', '--iw-chunk', '1000000'],
     '--k 1 and --iw-chunk 1000000'),
])
def test_an_evaluation_beyond_the_memory_is_refused_first(
        tmp_path, mnist_dir, monkeypatch, flags, size):
    from vae import memory
    script = command('evaluate')

    def no_work(*args, **kwargs):
        raise AssertionError('the evaluation ran')

    monkeypatch.setattr(script.estimators, 'evaluate', no_work)
    # the same machine everywhere: 8 GiB
    monkeypatch.setattr(memory, 'machine_bytes', lambda: 8 << 30)
    model = tiny_model(tmp_path)
    if '--k' not in flags:
        flags = flags + ['--k', '1']
    with pytest.raises(SystemExit) as info:
        script.main(['-m', str(model), '--data-dir', mnist_dir,
                     '--no-progress'] + flags)
    assert_one_line_error(info, 'evaluating with %s needs about ' % size)
    assert 'more than the 8.0 GiB of this machine' in str(info.value.code)
    assert sorted(os.listdir(tmp_path)) == ['model.npz']


# --- output folders ---------------------------------------------------------

@pytest.mark.parametrize('script', ['train', 'plot_latent', 'plot_swiss_roll',
                                    'export_web', 'export_onnx'])
def test_every_command_refuses_a_file_as_out_alike_before_the_work(
        script, tmp_path):
    from vae.model import VAE
    from vae.train.model_files import save_model
    model = tmp_path / 'model.npz'
    save_model(model, VAE(784, 2, 4))
    argv = {'train': ['--test', '--data-dir', str(tmp_path / 'no-data')],
            'plot_swiss_roll': []}.get(script, ['-m', str(model)])
    out = tmp_path / 'file'
    out.write_text('in the way')
    with pytest.raises(SystemExit) as info:
        command(script).main(argv + ['--out', str(out)])
    # train names --out, not the missing data: checked before the data
    assert info.value.code == 'error: --out is a file, not a folder: %s' % out
    assert out.read_text() == 'in the way'
    assert sorted(os.listdir(tmp_path)) == ['file', 'model.npz']


@pytest.mark.parametrize('script, argv', [
    ('train', ['--test']),
    ('evaluate', ['-m', 'model.npz']),
    ('plot_latent', ['-m', 'model.npz']),
    ('export_web', ['-m', 'model.npz']),
    ('export_onnx', ['-m', 'model.npz']),
])
def test_an_empty_out_is_refused(script, argv, capsys):
    with pytest.raises(SystemExit) as info:
        command(script).main(argv + ['--out', ''])
    assert info.value.code == 2
    assert 'must name a file or folder, not an empty string' in \
        capsys.readouterr().err


def test_plot_latent_on_a_missing_gpu_makes_no_folder(tmp_path):
    from testutil import gpu_available
    if gpu_available():
        pytest.skip('a GPU is here: --gpu 0 works')
    model = tiny_model(tmp_path)
    with pytest.raises(SystemExit) as info:
        command('plot_latent').main(['-m', str(model), '--gpu', '0',
                                         '-o', str(tmp_path / 'figs')])
    assert str(info.value.code).startswith('error: ')
    assert '\n' not in str(info.value.code)
    assert sorted(os.listdir(tmp_path)) == ['model.npz']


def test_export_web_checks_its_out_before_building_the_page(
        tmp_path, mnist_dir, monkeypatch):
    import errno
    import tempfile
    script = command('export_web')
    model = tiny_model(tmp_path)

    def no_work(*args, **kwargs):
        raise AssertionError('the page was built')

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, 'Read-only file system')

    monkeypatch.setattr(script.explorer_lib, 'build_page', no_work)
    monkeypatch.setattr(script.mnist, 'load_mnist', no_work)
    monkeypatch.setattr(tempfile, 'mkstemp', read_only)  # a read-only mount
    with pytest.raises(SystemExit) as info:
        script.main(['-m', str(model), '--data-dir', mnist_dir, '-o',
                     str(tmp_path / 'site')])
    assert_one_line_error(info, 'cannot write into %s: Read-only file '
                          'system' % (tmp_path / 'site'))


def test_a_corrupt_environment_record_is_kept_aside_with_a_note(
        tmp_path, capsys):
    from vae import device as device_lib
    from vae.train import trainer
    (tmp_path / run_folder.ENVIRONMENT_FILE).write_text('[{"numpy": ')
    trainer.record_environment(str(tmp_path), device_lib.get_device(
        None, None), 3)
    err = capsys.readouterr().err
    assert err.startswith('note: %s was unreadable (' % (
        tmp_path / run_folder.ENVIRONMENT_FILE))
    assert err.count('\n') == 1
    kept = tmp_path / (run_folder.ENVIRONMENT_FILE + '.unreadable')
    assert kept.read_text() == '[{"numpy": '
    (entry,) = json.loads((tmp_path / run_folder.ENVIRONMENT_FILE)
                          .read_text())
    assert entry['from_epoch'] == 3


# --- leftovers of a kill -9 -------------------------------------------------

def plant(folder, *names):
    """Files as a write killed by kill -9 leaves them (vae.atomic's names)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_text('half')
    return [folder / name for name in names]


def test_evaluate_removes_the_leftovers_of_its_own_writes(
        tmp_path, mnist_dir, capsys):
    model = tiny_model(tmp_path)
    debris = plant(tmp_path, '.evaluation_test.k2j4_x9a.tmp.json')
    other = plant(tmp_path, '.notes.ab12cd34.tmp.txt')  # not its own
    assert command('evaluate').main([
        '-m', str(model), '--data-dir', mnist_dir, '--limit', '10',
        '--iw-samples', '5', '--no-progress']) == 0
    assert not any(path.exists() for path in debris)
    assert all(path.exists() for path in other)
    assert ('removed what an interrupted write left in %s: '
            '.evaluation_test.k2j4_x9a.tmp.json' % tmp_path
            in capsys.readouterr().err)


def test_plot_latent_removes_the_leftovers_of_its_own_writes(
        tmp_path, mnist_dir):
    model = tiny_model(tmp_path)
    figures = tmp_path / 'figures'
    debris = (plant(figures, '.vae_0to7_dim_2.ab12cd34.tmp.gif',
                    '.prior_samples.zz99yy88.tmp.png')
              + plant(figures / 'projector', '.vectors.ab12cd34.tmp.tsv'))
    assert command('plot_latent').main([
        '-m', str(model), '--only', 'prior', '--no-progress']) == 0
    assert not any(path.exists() for path in debris)
    assert (figures / 'prior_samples.png').is_file()


def test_export_web_removes_the_leftovers_of_its_own_writes(
        tmp_path, mnist_dir):
    model = tiny_model(tmp_path)
    debris = plant(tmp_path / 'site', '.index.ab12cd34.tmp.html')
    assert command('export_web').main([
        '-m', str(model), '--data-dir', mnist_dir, '-o',
        str(tmp_path / 'site'), '--no-progress']) == 0
    assert not debris[0].exists()
    assert (tmp_path / 'site' / 'index.html').is_file()


def test_export_onnx_removes_the_leftovers_of_its_own_writes(tmp_path):
    pytest.importorskip('onnx')
    model = tiny_model(tmp_path)
    debris = plant(tmp_path / 'onnx', '.encoder.ab12cd34.tmp.onnx',
                   '.decoder.k2j4_x9a.tmp.onnx')
    assert command('export_onnx').main([
        '-m', str(model), '-o', str(tmp_path / 'onnx')]) == 0
    assert not any(path.exists() for path in debris)
    assert sorted(os.listdir(tmp_path / 'onnx')) == ['decoder.onnx',
                                                     'encoder.onnx']


# --- several processes: evaluate --------------------------------------------

def test_an_mpi_launch_of_evaluate_needs_the_communicator(
        tmp_path, monkeypatch):
    model = tiny_model(tmp_path)
    monkeypatch.setenv('PMI_SIZE', '2')
    with pytest.raises(SystemExit) as info:
        command('evaluate').main(['-m', str(model), '--no-progress'])
    assert_one_line_error(info, 'one of 2 processes started by an MPI '
                          'launcher (PMI_SIZE=2) but --communicator is not '
                          'given')
    assert sorted(os.listdir(tmp_path)) == ['model.npz']


# --- Ctrl-C and SIGTERM in the other scripts --------------------------------

def script_runs(folder, mnist_dir):
    """``{script: (argv, output folder)}``: a short run of each script that
    does not train, on a tiny model in ``folder``."""
    model = str(tiny_model(folder))
    return {
        'evaluate': (['-m', model, '--data-dir', mnist_dir, '--limit', '10',
                      '--iw-samples', '5', '--no-progress', '-o',
                      str(folder / 'out') + '/'], folder / 'out'),
        'plot_latent': (['-m', model, '--only', 'prior', '--no-progress',
                         '-o', str(folder / 'out')], folder / 'out'),
        'export_web': (['-m', model, '--data-dir', mnist_dir, '--no-progress',
                        '-o', str(folder / 'out')], folder / 'out'),
        'export_onnx': (['-m', model, '-o', str(folder / 'out')],
                        folder / 'out'),
    }


def files_below(folder):
    return sorted(str(path.relative_to(folder))
                  for path in folder.rglob('*') if path.is_file())


SCRIPTS = ['evaluate', 'plot_latent', 'export_web', 'export_onnx']


@pytest.mark.parametrize('script', SCRIPTS)
def test_ctrl_c_while_a_script_writes_says_so_in_one_line(
        tmp_path, mnist_dir, monkeypatch, script):
    from vae import atomic
    if script == 'export_onnx':
        pytest.importorskip('onnx')
    argv, out = script_runs(tmp_path, mnist_dir)[script]

    def ctrl_c():  # the temporary file is written, the rename is next
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, '_umask', ctrl_c)
    with pytest.raises(SystemExit) as info:
        try:
            command(script).main(argv)
        except KeyboardInterrupt:  # would stop pytest itself
            pytest.fail('KeyboardInterrupt came out of main: a traceback')
    assert_one_line_error(info, 'stopped by Ctrl-C; ')
    assert 'run the same command to' in str(info.value.code)
    assert not out.exists() or files_below(out) == []


@pytest.mark.parametrize('script, signum', [
    ('evaluate', signal.SIGTERM), ('plot_latent', signal.SIGTERM),
    ('export_web', signal.SIGINT), ('export_onnx', signal.SIGTERM)])
def test_a_signal_while_a_script_writes_ends_it_in_one_line(
        tmp_path, mnist_dir, script, signum):
    if script == 'export_onnx':
        pytest.importorskip('onnx')
    argv, out = script_runs(tmp_path, mnist_dir)[script]
    marker = tmp_path / 'writing'
    process = subprocess.Popen(
        [sys.executable, str(ROOT / 'tests' / 'script_driver.py'),
         'hold=%s' % marker, script] + argv,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not marker.exists():
            assert process.poll() is None and time.time() < deadline
            time.sleep(0.05)
        process.send_signal(signum)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    name = 'SIGTERM' if signum == signal.SIGTERM else 'Ctrl-C'
    assert err.startswith('error: stopped by %s; ' % name), err
    assert err.count('\n') == 1, err
    assert files_below(out) == []


# --- a full disk -------------------------------------------------------------

@pytest.mark.parametrize('limit', [0, 100, 5000, 60000])
def test_a_full_disk_leaves_no_zip_file_open(tmp_path, monkeypatch, limit):
    # NumPy 1's savez leaves its zip file open when a write fails (NumPy 2's
    # closes it): on the NumPy 1 stack this fails without atomic.save_npz's
    # own writer
    import gc
    from testutil import full_disk
    from vae import atomic
    unraisable = []
    monkeypatch.setattr(sys, 'unraisablehook', unraisable.append)
    monkeypatch.setattr(atomic, 'open', full_disk('snapshot', limit),
                        raising=False)
    arrays = {'a%d' % i: numpy.arange(1000 * i, dtype=numpy.float32)
              for i in range(8)}
    with pytest.raises(atomic.WriteError) as info:
        atomic.save_npz(tmp_path / 'snapshot_epoch_1', arrays)
    assert str(info.value) == ('cannot write %s: No space left on device'
                               % (tmp_path / 'snapshot_epoch_1'))
    del info  # its traceback holds the frames, and they the zip file
    gc.collect()  # a zip file left open complains in its __del__
    assert [repr(u.exc_value) for u in unraisable] == []
    assert os.listdir(tmp_path) == []


def test_a_full_disk_during_training_is_one_line(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    done = subprocess.run(
        [sys.executable, str(ROOT / 'tests' / 'script_driver.py'),
         'full=snapshot_epoch_2:20000', 'train'] + SMALL_RUN
        + ['--data-dir', mnist_dir, '-o', str(out), '-e', '3'],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        timeout=300)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines()
             if not line.startswith('note: Graphviz')]
    assert lines == ['error: cannot write %s: No space left on device'
                     % (out / 'snapshot_epoch_2')], done.stderr
    assert [e for e, _ in run_folder.snapshots(out)] == [1]
    assert not [name for name in os.listdir(out) if '.tmp' in name]


@pytest.mark.parametrize('name', ['plot_latent', 'plot_swiss_roll',
                                  'export_web', 'export_onnx'])
def test_a_one_process_command_under_a_launcher_of_several_is_refused(
        name, tmp_path, monkeypatch, capsys):
    # mpiexec -n 2 would run two whole copies writing the same files
    monkeypatch.setenv('PMI_SIZE', '2')
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as info:
        command(name).main(['-m', str(tmp_path / 'x.npz'), '-o', str(out)]
                           if name != 'plot_swiss_roll' else ['--out', str(out)])
    assert str(info.value.code).startswith('error: this is one of 2 processes')
    assert 'PMI_SIZE=2' in str(info.value.code)
    assert 'run it without mpiexec' in str(info.value.code)
    assert not out.exists()
