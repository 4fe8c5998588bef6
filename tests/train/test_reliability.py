"""What a hostile or a clumsy user can do to a run, and what holds.

One test per way things went wrong before: a snapshot that runs code, two
runs into one folder, a batch larger than the data, an output path that
fails after the work, a resume under other settings, the debris of a
kill -9, a stale graph, tracebacks instead of one-line errors, and the
article's own model files refused.
"""
import json
import os
import subprocess

import chainer
import numpy
import pytest

from testutil import command, read_log, train_in_background, train_small
from vae import VAE
from vae.train import run_folder
from vae.train.model_files import load_model, save_model

evaluate_script = command('evaluate')
plot_latent = command('plot_latent')


class Payload(object):
    """Unpickling this object creates the file ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def poison(snapshot, key, marker):
    """Put an object array at ``key`` of ``snapshot``, as an attacker would."""
    with numpy.load(snapshot) as npz:
        arrays = dict(npz)
    arrays[key] = numpy.array([Payload(str(marker))], dtype=object)
    with open(snapshot, 'wb') as f:
        numpy.savez(f, **arrays)


@pytest.mark.parametrize('how', ['automatic', '--resume'])
def test_a_snapshot_that_would_run_code_is_refused(tmp_path, mnist_dir, how):
    out = tmp_path / 'run'
    train_small(out, mnist_dir, '-e', '1')
    snapshot = out / 'snapshot_epoch_1'
    marker = tmp_path / 'pwned'
    poison(snapshot, 'updater/iterator:main/current_position', marker)
    target = out if how == 'automatic' else tmp_path / 'other'
    extra = [] if how == 'automatic' else ['--resume', str(snapshot)]
    with pytest.raises(SystemExit) as info:
        train_small(target, mnist_dir, '-e', '2', *extra)
    message = str(info.value.code)
    assert str(snapshot) in message
    assert 'updater/iterator:main/current_position' in message
    assert 'refused' in message and '\n' not in message
    assert not marker.exists()
    with pytest.raises(ValueError):  # the control: unpickling does run it
        numpy.load(snapshot)['updater/iterator:main/current_position']
    numpy.load(snapshot, allow_pickle=True)[
        'updater/iterator:main/current_position']
    assert marker.exists()


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    first = train_in_background(out, mnist_dir, 25, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
    try:
        with pytest.raises(SystemExit) as info:
            train_small(out, mnist_dir, '-e', '25', '--seed', '1')
        message = str(info.value.code)
        assert 'in use by another run (PID %d on ' % first.pid in message
        assert first.poll() is None  # the first went on meanwhile
    finally:
        output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    config = json.loads((out / 'config.json').read_text())
    assert config['seed'] == 0
    log = read_log(out)
    assert [e['epoch'] for e in log] == list(range(1, 26))
    assert not (out / '.lock').exists()  # released


def test_a_lock_left_by_a_dead_run_is_taken_over(tmp_path, mnist_dir,
                                                  capsys):
    out = tmp_path / 'run'
    out.mkdir()
    (out / '.lock').write_text(json.dumps(
        {'pid': 999999, 'host': 'elsewhere', 'started': '2026-01-01'}))
    assert train_small(out, mnist_dir, '-e', '1') == 0
    assert ('took over the lock of a run that ended without releasing it '
            '(PID 999999 on elsewhere since 2026-01-01)'
            in capsys.readouterr().err)
    assert not (out / '.lock').exists()


@pytest.mark.parametrize('batch', ['5000', '1001'])
def test_a_batch_larger_than_the_data_is_refused(tmp_path, mnist_dir, batch):
    with pytest.raises(SystemExit, match='error: batchsize %s is larger '
                       'than the 1000 training images' % batch):
        train_small(tmp_path / 'run', mnist_dir, '-e', '2', '-b', batch)
    assert not (tmp_path / 'run').exists()


def test_an_epoch_is_one_pass_whatever_the_batch(tmp_path, mnist_dir):
    out = tmp_path / 'run'
    train_small(out, mnist_dir, '-e', '3', '-b', '1000')  # one iteration an epoch
    log = read_log(out)
    assert [(e['epoch'], e['iteration']) for e in log] == [
        (1, 1), (2, 2), (3, 3)]
    assert sorted(os.path.basename(p) for _, p in
                  run_folder.snapshots(out)) == [
        'snapshot_epoch_1', 'snapshot_epoch_2', 'snapshot_epoch_3']


@pytest.fixture(scope='module')
def model_file(tmp_path_factory):
    numpy.random.seed(0)
    path = tmp_path_factory.mktemp('model') / 'model.npz'
    save_model(path, VAE(784, 2, 8, 'softplus'))
    return path


def test_evaluate_checks_its_output_before_the_work(
        tmp_path, mnist_dir, model_file, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError('the evaluation ran')

    monkeypatch.setattr(evaluate_script.estimators, 'evaluate', no_work)
    blocker = tmp_path / 'a-file'
    blocker.write_text('')
    with pytest.raises(SystemExit, match='error: cannot write into .*a-file'):
        evaluate_script.main(['--model', str(model_file), '--data-dir',
                              mnist_dir, '--out', str(blocker / 'r.json')])
    monkeypatch.undo()
    new = tmp_path / 'new' / 'folder'
    assert evaluate_script.main([
        '--model', str(model_file), '--data-dir', mnist_dir, '--limit', '10',
        '--iw-samples', '5', '--no-progress', '--out', str(new) + '/']) == 0
    assert json.loads((new / 'evaluation_test.json').read_text())['n'] == 10


def test_resume_from_a_snapshot_checks_its_settings(tmp_path, mnist_dir):
    first = tmp_path / 'first'
    train_small(first, mnist_dir, '-e', '1')
    snapshot = str(first / 'snapshot_epoch_1')
    other = tmp_path / 'other'
    with pytest.raises(SystemExit, match=r"snapshot .*snapshot_epoch_1 holds "
                       r"a run of other settings \(alpha=0.001 there, 0.01 "
                       r"now\)"):
        train_small(other, mnist_dir, '-e', '2', '--alpha', '0.01',
              '--resume', snapshot)
    assert not (other / 'config.json').exists()
    assert train_small(other, mnist_dir, '-e', '2', '--resume', snapshot) == 0
    log = read_log(other)
    assert [e['epoch'] for e in log] == [1, 2]

    # a snapshot with no record of its settings: only with --config
    with numpy.load(snapshot) as npz:
        bare = {k: npz[k] for k in npz.files if k != '_vae_config'}
    lone = tmp_path / 'lone' / 'snapshot_epoch_1'
    lone.parent.mkdir()
    numpy.savez(open(lone, 'wb'), **bare)
    with pytest.raises(SystemExit, match='carries no record of the settings'):
        train_small(tmp_path / 'third', mnist_dir, '-e', '2', '--resume', str(lone))
    config = tmp_path / 'settings.json'
    config.write_text(json.dumps({'n_latent': 2, 'n_h': 16}))
    assert train_small(tmp_path / 'third', mnist_dir, '-e', '2', '--resume',
                 str(lone), '--config', str(config)) == 0


def test_leftovers_of_a_killed_run_are_removed(tmp_path, mnist_dir, capsys):
    out = tmp_path / 'run'
    train_small(out, mnist_dir, '-e', '1')
    debris = ['.model.k2j4_x9a.tmp.npz', '.snapshot_epoch_2.abcd1234.tmp',
              '.log.zz99yy88.tmp']
    for name in debris:
        (out / name).write_text('')
    (out / 'tmpsnapshot_epoch_2q1w2e3r4').mkdir()  # Chainer's writer's
    kept = ['.notes', 'tmp_mine', 'model.npz.bak']
    for name in kept:
        (out / name).write_text('mine')
    train_small(out, mnist_dir, '-e', '2')
    names = set(os.listdir(out))
    assert not names & set(debris + ['tmpsnapshot_epoch_2q1w2e3r4'])
    assert set(kept) <= names
    err = capsys.readouterr().err
    assert 'removed what an interrupted run left in %s' % out in err


def test_the_graph_is_drawn_for_the_run_that_writes_it(
        tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / 'run'
    from testutil import interrupt_at
    interrupt_at(monkeypatch, 1)  # an attempt that dies at once
    with pytest.raises(SystemExit, match='stopped by Ctrl-C'):
        train_small(out, mnist_dir, '-e', '1', '-z', '5')
    monkeypatch.undo()
    assert ', 5)' in (out / 'cg.dot').read_text()
    train_small(out, mnist_dir, '-e', '1', '-z', '3')
    graph = (out / 'cg.dot').read_text()
    assert ', 5)' not in graph and '(100, 3)' in graph


def test_plot_latent_says_what_is_wrong_in_one_line(
        tmp_path, mnist_dir, capsys):
    numpy.random.seed(0)
    path = tmp_path / 'wide.npz'
    save_model(path, VAE(100, 2, 8))
    with pytest.raises(SystemExit) as info:
        plot_latent.main(['--model', str(path), '--data-dir', mnist_dir])
    assert info.value.code == ('error: %s takes 100 inputs, but the figures '
                               'are of MNIST images of 784 pixels' % path)
    path = tmp_path / 'model.npz'
    save_model(path, VAE(784, 2, 8))
    (tmp_path / 'log').write_text('{"epoch": 1}')  # JSON, not a log
    assert plot_latent.main(['--model', str(path), '--only', 'loss',
                             '--no-progress']) == 0
    assert 'is not a training log' in capsys.readouterr().out
    assert not (tmp_path / 'figures' / 'loss.png').exists()


def article_file(path, model):
    """What the article's notebook wrote: plain save_npz of its VAE."""
    chainer.serializers.save_npz(str(path), model)
    return path


@pytest.mark.numerics
def test_the_articles_own_model_files_load(tmp_path, mnist_dir, capsys):
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    ours = tmp_path / 'ours' / 'model.npz'
    save_model(ours, model)
    theirs = article_file(tmp_path / 'theirs.npz', model)
    loaded = load_model(theirs)
    assert 'records no activation; using softplus' in capsys.readouterr().err
    assert (loaded.n_in, loaded.n_latent, loaded.n_h, loaded.activation) == (
        784, 2, 8, 'softplus')
    assert load_model(theirs, 'tanh').activation == 'tanh'
    # the same outputs as the project's own file of the same weights
    results = []
    for path in (ours, theirs):
        out = tmp_path / ('eval_%s.json' % path.stem)
        evaluate_script.main(['--model', str(path), '--data-dir', mnist_dir,
                              '--limit', '30', '--iw-samples', '20',
                              '--no-progress', '--out', str(out)])
        result = json.loads(out.read_text())
        results.append({k: result[k] for k in (
            'neg_elbo', 'neg_log_likelihood', 'active_units')})
    assert results[0] == results[1]  # exact: the same weights, seed, steps
    assert plot_latent.main(['--model', str(theirs), '--data-dir', mnist_dir,
                             '--only', 'reconstruction', '--no-progress',
                             '--out', str(tmp_path / 'figs')]) == 0
    assert (tmp_path / 'figs' / 'compare_reconstruction.png').exists()
    # and the other way: the article's class reads the project's file
    plain = VAE(784, 2, 8, 'softplus')
    chainer.serializers.load_npz(str(ours), plain)
    for (name, a), (_, b) in zip(sorted(plain.namedparams()),
                                 sorted(model.namedparams())):  # copies
        numpy.testing.assert_array_equal(a.array, b.array, err_msg=name)


def test_only_the_articles_fourteen_arrays_pass(tmp_path):
    from vae.train.model_files import ModelFileError
    numpy.random.seed(0)
    good = article_file(tmp_path / 'good.npz', VAE(784, 3, 8))
    with numpy.load(good) as npz:
        arrays = dict(npz)
    extra = dict(arrays, **{'classifier/W': numpy.zeros(3)})
    missing = {k: v for k, v in arrays.items() if k != 'ld3/b'}
    skewed = dict(arrays, **{'ld2/W': numpy.zeros((8, 9), numpy.float32)})
    for name, content, message in (
            ('extra', extra, 'unexpected classifier/W'),
            ('missing', missing, 'missing ld3/b'),
            ('skewed', skewed, r'ld2/W has shape \(8, 9\), but the article'
             r"'s VAE with n_in=784, n_latent=3, n_h=8 needs \(8, 8\)")):
        path = tmp_path / (name + '.npz')
        numpy.savez(path, **content)
        with pytest.raises(ModelFileError, match=message):
            load_model(path, 'softplus')
