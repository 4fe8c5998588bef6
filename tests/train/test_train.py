"""The train command (vae/commands/train.py) end to end, through its
main(argv), on the --test subset of MNIST."""
import functools
import json
import os

import numpy
import pytest

from testutil import (command, gpu_available, interrupt_at, params_of,
                      read_log, small_run, train_small)
from vae import model as model_lib
from vae.train import updater
from vae.train.model_files import load_model

train_script = command('train')

#: The flags of these tests' runs: 784-64-64-3 on the --test subset.
SMALL = small_run(n_hidden=64, n_latent=3)
#: One of those runs into ``out``; its exit status.
run = functools.partial(train_small, n_hidden=64, n_latent=3)


@pytest.mark.numerics
def test_two_epochs_write_every_output(tmp_path, mnist_dir, capsys):
    out = tmp_path / 'run'
    assert run(out, mnist_dir, '-e', '2') == 0
    for name in ('log', 'model.npz', 'config.json', 'cg.dot', 'loss.png',
                 'snapshot_epoch_2'):
        assert (out / name).exists(), name
    log = read_log(out)
    assert [e['epoch'] for e in log] == [1, 2]
    # 784 * log 2 = 543 nats is the loss of a decoder that knows nothing
    for e in log:
        for key in ('main/loss', 'validation/main/loss'):
            assert 60 < e[key] < 560
        assert e['main/loss'] == pytest.approx(
            e['main/reconstr'] + e['main/kl'], rel=1e-4)
    assert log[1]['main/loss'] < log[0]['main/loss']
    assert log[1]['validation/main/loss'] < log[0]['validation/main/loss']
    config = json.loads((out / 'config.json').read_text())
    assert (config['n_latent'], config['n_h'], config['epoch']) == (3, 64, 2)
    assert config['k_test'] == 10 and config['activation'] == 'softplus'
    graph = (out / 'cg.dot').read_text()
    assert graph.startswith('digraph')
    # the article's graph: 7 linear layers, the sampling node, the softplus
    assert graph.count('label="LinearFunction"') == 7
    assert 'label="Gaussian"' in graph and 'label="Softplus"' in graph
    printed = capsys.readouterr().out
    assert 'validation/main/loss' in printed


@pytest.mark.numerics
def test_model_file_rebuilds_the_trained_model(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1')
    model = load_model(out / 'model.npz')
    assert (model.n_in, model.n_latent, model.n_h, model.activation) == (
        784, 3, 64, 'softplus')
    with numpy.load(out / 'snapshot_epoch_1') as snap:
        for name, param in model.namedparams():  # exact: copies of one array
            numpy.testing.assert_array_equal(
                param.array, snap['updater/model:main' + name])


@pytest.mark.numerics
@pytest.mark.parametrize('data', [[], ['--binarize', 'dynamic']],
                         ids=['continuous', 'dynamic-binarization'])
def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(
        tmp_path, mnist_dir, monkeypatch, data):
    straight = tmp_path / 'straight'
    run(straight, mnist_dir, '-e', '3', *data)

    resumed = tmp_path / 'resumed'
    interrupt_at(monkeypatch, 25)  # in epoch 3: 10 iterations an epoch
    with pytest.raises(SystemExit, match='stopped by Ctrl-C'):
        run(resumed, mnist_dir, '-e', '3', *data)
    monkeypatch.undo()
    assert (resumed / 'snapshot_epoch_2').exists()
    assert not (resumed / 'snapshot_epoch_3').exists()
    run(resumed, mnist_dir, '-e', '3', *data)  # the same command again

    # exact: the resumed run repeats the same steps, on the same shapes, the
    # same noise and the same BLAS threads, as the uninterrupted one
    a = params_of(load_model(straight / 'model.npz'))
    b = params_of(load_model(resumed / 'model.npz'))
    for name in a:
        numpy.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert read_log(straight, times=False) == read_log(resumed, times=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_outputs(
        tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1', '--no-fast')
    good_model = (out / 'model.npz').read_bytes()
    good_snapshot = (out / 'snapshot_epoch_1').read_bytes()

    original = model_lib.sample_reconstruction_loss
    original_update = updater.Updater.update_core
    now = {'iteration': None}

    def nan_at_iteration_15(model, x, mu, ln_var, k):
        loss = original(model, x, mu, ln_var, k)
        if now['iteration'] == 15:
            return loss * float('nan')
        return loss

    def update_core(self):
        now['iteration'] = self.iteration + 1
        try:
            original_update(self)
        finally:
            now['iteration'] = None

    monkeypatch.setattr(model_lib, 'sample_reconstruction_loss',
                        nan_at_iteration_15)
    monkeypatch.setattr(updater.Updater, 'update_core', update_core)
    with pytest.raises(SystemExit,
                       match=r'non-finite loss.*iteration 15 \(epoch 2\); '
                       r'training stopped before this update; what it had '
                       r'written is intact: snapshot_epoch_1, model.npz'):
        run(out, mnist_dir, '-e', '3', '--no-fast')  # patched: plain path
    assert (out / 'model.npz').read_bytes() == good_model
    assert (out / 'snapshot_epoch_1').read_bytes() == good_snapshot
    assert not (out / 'snapshot_epoch_2').exists()
    assert all(numpy.isfinite(p).all()
               for p in params_of(load_model(out / 'model.npz')).values())

    fresh = tmp_path / 'fresh'  # the first update fails: nothing to keep
    monkeypatch.setattr(model_lib, 'sample_reconstruction_loss',
                        lambda *args: original(*args) * float('nan'))
    with pytest.raises(SystemExit, match=r'iteration 1 \(epoch 1\); '
                       r'training stopped before this update; nothing had '
                       r'been saved yet'):
        run(fresh, mnist_dir, '-e', '1', '--no-fast')


def test_sizes_that_disagree_with_the_run_in_out(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1')
    config_before = (out / 'config.json').read_text()
    with pytest.raises(SystemExit, match=r'another model \(n_latent=3 there, '
                       r'4 now\)'):
        run(out, mnist_dir, '-e', '1', '-z', '4')
    assert (out / 'config.json').read_text() == config_before

    with pytest.raises(SystemExit, match=r'snapshot_epoch_1 does not fit '
                       r'the model.*le3_mu/W is \(3, 64\) there, \(4, 64\)'):
        run(tmp_path / 'other', mnist_dir, '-e', '1', '-z', '4',
            '--resume', str(out / 'snapshot_epoch_1'))
    with pytest.raises(SystemExit, match='snapshot not found'):
        run(tmp_path / 'other2', mnist_dir, '--resume',
            str(tmp_path / 'nothing'))


def test_bad_config_and_data_dir_give_one_line_errors(tmp_path, mnist_dir):
    with pytest.raises(SystemExit, match='config file not found'):
        run(tmp_path / 'a', mnist_dir, '--config', str(tmp_path / 'no.json'))
    with pytest.raises(SystemExit, match='error: .*missing-folder'):
        train_script.main(SMALL + ['--data-dir',
                                   str(tmp_path / 'missing-folder'),
                                   '-o', str(tmp_path / 'b')])


def test_dynamic_binarization_trains_on_fresh_binary_samples(
        tmp_path, mnist_dir, monkeypatch):
    seen = []
    original = updater.Updater.update_core

    def record(self):
        seen.append(self.get_iterator('main').dataset)
        original(self)

    monkeypatch.setattr(updater.Updater, 'update_core', record)
    run(tmp_path / 'd', mnist_dir, '-e', '1', '--binarize', 'dynamic')
    dataset = seen[0]
    first, second = dataset[:50], dataset[:50]
    assert set(numpy.unique(first)) <= {0.0, 1.0}
    assert not numpy.array_equal(first, second)



@pytest.mark.skipif(gpu_available(), reason='a GPU is present')
def test_gpu_flag_without_a_gpu_says_what_is_missing(tmp_path, mnist_dir):
    with pytest.raises(SystemExit, match=r'(CuPy, which is not installed|'
                       r'no CUDA GPU is usable).*--gpu -1'):
        run(tmp_path / 'g', mnist_dir, '--gpu', '0')
    assert not (tmp_path / 'g').exists()  # stopped before any work


@pytest.mark.parametrize('flags,message', [
    (['-e', '0'], 'epoch must be at least 1'),
    (['-b', '0'], 'batchsize must be at least 1'),
    (['--k', '-1'], 'k must be at least 1'),
    (['--k-test', '0'], 'k_test must be at least 1'),
    (['-z', '0'], 'n_latent must be at least 1'),
    (['--alpha', '0'], 'alpha must be positive'),
    (['--alpha', 'inf'], 'alpha must be positive and finite, got inf'),
    (['--seed', '-1'], r'seed must be in \[0, 2\*\*32\)'),
])
def test_bad_settings_are_refused_before_any_work(tmp_path, mnist_dir, flags,
                                                   message):
    out = tmp_path / 'run'
    with pytest.raises(SystemExit, match='error: .*' + message):
        run(out, mnist_dir, *flags)
    assert not out.exists()


def test_resume_with_other_data_settings_is_refused(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1')
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for flags, message in ((['--binarize', 'dynamic'], "binarize=None there, "
                            "'dynamic' now"),
                           (['-b', '7'], 'batchsize=100 there, 7 now')):
        with pytest.raises(SystemExit, match='other settings.*' + message):
            run(out, mnist_dir, '-e', '2', *flags)
    # without --test the data differ: a smoke run is not continued on MNIST
    with pytest.raises(SystemExit, match='test=True there, False now'):
        train_script.main(['--n-hidden', '64', '-z', '3', '--no-progress',
                           '--data-dir', mnist_dir, '-o', str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    run(out, mnist_dir, '-e', '2', '--no-fast')  # epoch and path may change
    assert [e['epoch'] for e in read_log(out)] == [1, 2]


def test_resume_loads_the_highest_epoch_whatever_the_file_times(
        tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '2')
    # a copy can leave an older snapshot with the newer file time
    stamp = os.stat(out / 'snapshot_epoch_2').st_mtime + 100
    os.utime(out / 'snapshot_epoch_1', (stamp, stamp))
    steps = []
    original = updater.Updater.update_core

    def count(self):
        steps.append(self.iteration + 1)
        original(self)

    monkeypatch.setattr(updater.Updater, 'update_core', count)
    run(out, mnist_dir, '-e', '3')
    assert steps == list(range(21, 31))  # epoch 3 only: 10 iterations each
    assert [e['epoch'] for e in read_log(out)] == [1, 2, 3]


def test_out_that_is_a_file_is_a_one_line_error(tmp_path, mnist_dir):
    out = tmp_path / 'file'
    out.write_text('not a folder')
    with pytest.raises(SystemExit, match='error: '):
        run(out, mnist_dir, '-e', '1')


def test_a_piped_log_has_no_terminal_codes(tmp_path, mnist_dir, capsys):
    run(tmp_path / 'run', mnist_dir, '-e', '2')
    printed = capsys.readouterr().out  # captured: not a terminal
    assert 'main/loss' in printed
    assert '\x1b' not in printed


def test_snapshots_are_kept_by_epoch_not_by_file_time(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '2')
    # an older snapshot with the newest file time (a copy, a restore)
    stamp = os.stat(out / 'snapshot_epoch_2').st_mtime + 1000
    os.utime(out / 'snapshot_epoch_1', (stamp, stamp))
    run(out, mnist_dir, '-e', '4', '--snapshot-retain', '2')
    assert sorted(p.name for p in out.iterdir()
                  if p.name.startswith('snapshot')) == [
        'snapshot_epoch_3', 'snapshot_epoch_4']


def test_the_run_records_what_computed_it(tmp_path, mnist_dir):
    import threadpoolctl
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1')
    run(out, mnist_dir, '-e', '2')
    first, second = json.loads((out / 'environment.json').read_text())
    assert (first['from_epoch'], second['from_epoch']) == (0, 1)
    blas = [i for i in threadpoolctl.threadpool_info()
            if i['user_api'] == 'blas']
    assert [b['num_threads'] for b in first['blas']] == [
        b['num_threads'] for b in blas]
    assert first['numpy'] == numpy.__version__
    assert first['device'].startswith('CPU (')


def test_a_snapshot_of_an_earlier_version_resumes(tmp_path, mnist_dir):
    # written before LogFile and the stored settings existed
    out = tmp_path / 'run'
    run(out, mnist_dir, '-e', '1')
    snapshot = out / 'snapshot_epoch_1'
    with numpy.load(snapshot) as npz:
        old = {key: npz[key] for key in npz.files
               if not key.startswith('extension_triggers/LogFile/')
               and key != '_vae_config'}
    assert len(old) < len(numpy.load(snapshot).files)
    with open(snapshot, 'wb') as f:
        numpy.savez(f, **old)
    assert run(out, mnist_dir, '-e', '2') == 0
    assert [e['epoch'] for e in read_log(out)] == [1, 2]


def test_stored_settings_under_the_old_size_names_read_as_the_new(tmp_path):
    from vae.train import resume
    from vae.train.extensions import SNAPSHOT_CONFIG_KEY
    path = tmp_path / 'snapshot_epoch_3'
    stored = {'dim_z': 2, 'n_hidden': 16, 'epoch': 3}
    numpy.savez(path, **{SNAPSHOT_CONFIG_KEY: numpy.array(json.dumps(stored))})
    with numpy.load(str(path) + '.npz') as npz:
        assert resume.recorded_config(npz, str(path)) == {
            'n_latent': 2, 'n_h': 16, 'epoch': 3}
