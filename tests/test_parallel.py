"""Training and evaluation over two processes: ``mpiexec -n 2`` (the MPI
wheel's, beside the interpreter), ChainerMN's naive communicator, the CPU.

Each job runs under a timeout, so that a hang fails the test instead of
stalling the suite; ``tests/mpi_driver.py`` runs the scripts with probes
(the weights after every update, each rank's losses, every file written)
and injected faults. Without the ``mpi`` extra these tests are skipped, and
under CI they fail.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy
import pytest

from testutil import ROOT, command, load_script, read_log, small_run
from vae import device as device_lib
from vae import parallel
from vae import watchdog
from vae.eval import estimators
from vae.model import VAE
from vae.train.model_files import load_model

MPIEXEC = pathlib.Path(sys.executable).parent / 'mpiexec'
DRIVER = pathlib.Path(__file__).resolve().parent / 'mpi_driver.py'
#: Seconds a job may take before it counts as hung (they take about 5).
TIMEOUT = 90
SMALL = small_run(n_hidden=32, n_latent=3) + ['--communicator', 'naive']
ITERATIONS_PER_EPOCH = 5  # 1000 images, 2 ranks, batch 100


@pytest.fixture(scope='module')
def mpiexec():
    try:
        import mpi4py  # NOQA: F401
        found = MPIEXEC.is_file()
    except ImportError:
        found = False
    if not found:
        message = ('no mpi4py, or no mpiexec beside %s: install the mpi extra '
                   '(pip install -e ".[mpi]")' % sys.executable)
        if os.environ.get('CI'):
            pytest.fail(message)
        pytest.skip(message)
    return str(MPIEXEC)


def launch(mpiexec, args, n=2, timeout=TIMEOUT):
    """Run ``python ARGS`` as an MPI job of ``n`` ranks; returns
    ``(returncode, stdout, stderr, seconds)``. A job still running after
    ``timeout`` is killed, with all its processes, and fails the test."""
    env = dict(os.environ, OMP_NUM_THREADS='1', OPENBLAS_NUM_THREADS='1')
    start = time.monotonic()
    job = subprocess.Popen([mpiexec, '-n', str(n), sys.executable] + args,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env, start_new_session=True)
    try:
        out, err = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        out, err = job.communicate()
        pytest.fail('the job hung for %d s:\n%s\n%s' % (timeout, out, err))
    return job.returncode, out, err, time.monotonic() - start


def train(mpiexec, out, mnist_dir, *extra, probes=None, fault=None):
    """``train.py`` over two ranks (through the driver where ``probes``
    names a folder for its records)."""
    args = SMALL + ['--data-dir', mnist_dir, '-o', str(out)] + list(extra)
    if probes is None:
        return launch(mpiexec, [str(ROOT / 'scripts' / 'train.py')] + args)
    os.makedirs(probes, exist_ok=True)
    head = [str(DRIVER), str(probes), 'train']
    return launch(mpiexec, head + ([fault] if fault else []) + args)


def read_probes(folder):
    return [json.loads((pathlib.Path(folder) / ('rank%d.json' % r))
                       .read_text()) for r in (0, 1)]


@pytest.fixture(scope='module')
def two_ranks(mpiexec, mnist_dir, tmp_path_factory):
    """A two-epoch run over two ranks, with probes."""
    base = tmp_path_factory.mktemp('two_ranks')
    code, out, err, _ = train(mpiexec, base / 'run', mnist_dir, '-e', '2',
                              probes=base / 'probes')
    assert code == 0, err
    return base / 'run', read_probes(base / 'probes'), out


def test_the_ranks_hold_the_same_weights_after_every_update(two_ranks):
    _, (zero, one), _ = two_ranks
    assert zero['initial'] == one['initial']
    digests = [[u['digest'] for u in r['updates']] for r in (zero, one)]
    assert len(digests[0]) == 2 * ITERATIONS_PER_EPOCH
    assert digests[0] == digests[1]
    # every update changed the weights, the first one too (ChainerMN's
    # optimizer would skip it: see parallel.Ranks.start_optimizer)
    assert len(set(digests[0] + [zero['initial']])) == len(digests[0]) + 1


def test_the_ranks_train_on_disjoint_shares_with_their_own_noise(
        two_ranks, mnist):
    _, (zero, one), _ = two_ranks
    assert len(zero['rows']) == len(one['rows']) == 500
    assert not set(zero['rows']) & set(one['rows'])
    import hashlib
    subset = {hashlib.sha1(row.tobytes()).hexdigest()
              for row in mnist[0].images[:1000]}
    assert set(zero['rows']) | set(one['rows']) == subset
    assert zero['numpy_state'] != one['numpy_state']


@pytest.mark.numerics
def test_the_logged_loss_is_the_mean_over_the_ranks(two_ranks):
    out, (zero, one), _ = two_ranks
    log = read_log(out)
    assert [e['epoch'] for e in log] == [1, 2]
    for key in ('loss', 'reconstr', 'kl'):
        local = numpy.array([[u[key] for u in r['updates']]
                             for r in (zero, one)])  # (rank, iteration)
        assert (local[0] != local[1]).all()  # other images, other noise
        per_epoch = local.mean(axis=0).reshape(2, ITERATIONS_PER_EPOCH)
        for entry, expected in zip(log, per_epoch.mean(axis=1)):
            assert entry['main/' + key] == pytest.approx(expected,
                                                         rel=1e-12)


def test_rank_0_alone_holds_the_folder_writes_and_prints(two_ranks):
    out, (zero, one), printed = two_ranks
    assert one['writes'] == [] and one['locks'] == []
    assert zero['locks'] == [str(out)]
    names = sorted(os.path.basename(p) for p in zero['writes'])
    graph = ['network.png'] if shutil.which('dot') else []  # Graphviz's
    assert names == sorted(
        ['config.json', 'environment.json', 'cg.dot'] + graph
        + ['log', 'loss.png', 'model.npz'] * 2
        + ['snapshot_epoch_1', 'snapshot_epoch_2', 'model.npz'])
    assert sorted(os.listdir(out)) == sorted([
        'cg.dot', 'config.json', 'environment.json', 'log', 'loss.png',
        'model.npz', 'snapshot_epoch_1', 'snapshot_epoch_2'] + graph)
    assert json.loads((out / 'config.json').read_text())['ranks'] == 2
    lines = printed.strip().splitlines()  # rank 0's: a header, 2 epochs
    assert len(lines) == 3 and lines[0].startswith('epoch ')


@pytest.mark.numerics
def test_resuming_needs_the_same_ranks_and_continues_exactly(
        mpiexec, mnist_dir, tmp_path):
    # with dynamic binarization, each rank's share draws its own samples
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    assert train(mpiexec, straight, mnist_dir, '-e', '2',
                 '--binarize', 'dynamic')[0] == 0
    # what a run stopped after epoch 1 leaves: its files but the last two
    shutil.copytree(straight, resumed)
    os.remove(resumed / 'snapshot_epoch_2')
    os.remove(resumed / 'model.npz')
    assert train(mpiexec, resumed, mnist_dir, '-e', '2',
                 '--binarize', 'dynamic')[0] == 0
    a, b = load_model(straight / 'model.npz'), load_model(
        resumed / 'model.npz')
    for (name, p), (_, q) in zip(sorted(a.namedparams()),
                                 sorted(b.namedparams())):
        numpy.testing.assert_array_equal(p.array, q.array, err_msg=name)
    assert read_log(straight, times=False) == read_log(resumed, times=False)

    before = {p.name: p.read_bytes() for p in resumed.iterdir()}
    one_process = SMALL[:-2] + ['--data-dir', mnist_dir, '-e', '3',
                                '--binarize', 'dynamic']
    with pytest.raises(SystemExit, match=r'error: .*resumed holds a run of '
                       r'other settings \(ranks=2 there, 1 now\)'):
        command('train').main(one_process + ['-o', str(resumed)])
    with pytest.raises(SystemExit, match=r'error: snapshot .* holds a run '
                       r'of other settings \(ranks=2 there, 1 now\)'):
        command('train').main(one_process + [
            '-o', str(tmp_path / 'other'),
            '--resume', str(resumed / 'snapshot_epoch_2')])
    # refused by rank 0's checks: every rank stops, with one message
    code, _, err, _ = train(mpiexec, resumed, mnist_dir, '-e', '3',
                            '--binarize', 'dynamic', '--seed', '1')
    assert code == 1
    assert err.count('error: ') == 1
    assert 'other settings (seed=0 there, 1 now)' in err
    assert 'BAD TERMINATION' not in err
    assert {p.name: p.read_bytes() for p in resumed.iterdir()} == before


def test_a_non_finite_loss_on_one_rank_stops_every_rank_together(
        mpiexec, mnist_dir, tmp_path):
    code, _, err, _ = train(mpiexec, tmp_path / 'run', mnist_dir, '-e', '2',
                            probes=tmp_path / 'p', fault='--fault=nan@1:7')
    assert code == 1
    assert err.count('error: ') == 1
    assert ('error: non-finite loss on rank 1 at iteration 7 (epoch 2); '
            'training stopped before this update; what it had written is '
            'intact: snapshot_epoch_1, model.npz' in err)
    assert 'BAD TERMINATION' not in err
    assert not (tmp_path / 'run' / '.lock').exists()


@pytest.mark.parametrize('fault,extra,message', [
    ('--fault=nodata@1', [], 'error: rank 1: injected: MNIST not found here'),
    (None, ['--communicator', 'flat'], 'error: --communicator flat works '
     'between GPUs only (it exchanges the gradients in GPU memory, through '
     'CuPy): give --gpu, or on the CPU use --communicator naive'),
], ids=['data-missing-on-rank-1', 'flat-on-the-cpu'])
def test_what_stops_a_rank_before_training_stops_every_rank_together(
        mpiexec, mnist_dir, tmp_path, fault, extra, message):
    code, _, err, _ = train(mpiexec, tmp_path / 'run', mnist_dir, *extra,
                            probes=tmp_path / 'p', fault=fault)
    assert code == 1
    assert err.strip() == message  # once, from rank 0
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('kind,message', [
    ('oserror', 'error: rank 1 of 2: [Errno 28] injected: no space left on '
     'device; stopping every rank'),
    ('uncaught', 'RuntimeError: injected failure\nerror: rank 1 of 2: '
     'uncaught RuntimeError; stopping every rank'),
    ('kill', 'BAD TERMINATION'),
])
def test_a_rank_that_dies_ends_the_job(mpiexec, mnist_dir, tmp_path, kind,
                                       message):
    code, out, err, seconds = train(
        mpiexec, tmp_path / 'run', mnist_dir, '-e', '2',
        probes=tmp_path / 'p', fault='--fault=%s@1:3' % kind)
    assert code != 0
    assert message in out + err  # mpiexec's own report goes to stdout
    assert seconds < TIMEOUT


@pytest.mark.numerics
def test_two_ranks_evaluate_as_one_process(two_ranks, mpiexec, mnist_dir,
                                           mnist, tmp_path):
    model_file = two_ranks[0] / 'model.npz'
    results = []
    for n in (2, 1):
        out = tmp_path / ('evaluation_%d.json' % n)
        code, printed, err, _ = launch(mpiexec, [
            str(ROOT / 'scripts' / 'evaluate.py'), '--model', str(model_file),
            '--data-dir', mnist_dir, '--limit', '250', '--iw-samples', '40',
            '--iw-chunk', '15', '--seed', '3', '--no-progress',
            '--communicator', 'naive', '--out', str(out)], n=n)
        assert code == 0, err
        assert printed.count('-ELBO') == 1  # rank 0's table alone
        results.append(json.loads(out.read_text()))
    two, one = results
    assert (two['ranks'], two['noise'], two['n']) == (2, 'per batch', 250)
    keys = ('neg_elbo', 'reconstr', 'kl', 'neg_log_likelihood',
            'neg_log_likelihood_sem', 'active_units')
    # to the last bit: both launches give every process one BLAS thread, each
    # batch is the same product on the same shapes, and rank 0 adds the
    # batches' sums in the order of one process
    for key in keys:
        assert two[key] == one[key], key
    # the library in this process, without MPI: the same noise per batch
    # (to float32 precision: the BLAS here runs on other threads)
    model, x = load_model(model_file), mnist[1].images[:250]
    expected = estimators.evaluate(model, x, k=10, iw_samples=40,
                                   iw_chunk=15, progress=False, seed=3)
    for key in keys:
        assert two[key] == pytest.approx(expected[key], rel=1e-6), key
    # the control: one stream over the batches gives other numbers
    numpy.random.seed(3)
    stream = estimators.evaluate(model, x, k=10, iw_samples=40,
                                 iw_chunk=15, progress=False)
    assert abs(stream['neg_log_likelihood'] - two['neg_log_likelihood']) \
        > 1e-4


def test_the_benchmark_times_steps_over_two_ranks(mpiexec, monkeypatch):
    benchmark = load_script('benchmark')
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(benchmark.os, 'cpu_count', lambda: 2)
    result = benchmark.benchmark_ranks((2,), (20,), rounds=1, steps=2,
                                       warmup=1)
    (row,) = result['rows']
    assert (row['ranks'], row['threads'], row['batch']) == (2, '1', 20)
    assert row['samples_per_s'] == pytest.approx(40 / row['s_per_step'])
    result['device'] = 'CPU'
    table = benchmark.format_rank_table(result).splitlines()
    assert table[1].split()[:4] == ['ranks', 'threads/rank', 'batch/rank',
                                    'global']
    assert table[2].split()[:4] == ['2', '1', '20', '40']


def test_rank_seeds_differ_and_repeat():
    seeds = {parallel.rank_seed(s, r) for s in range(3) for r in range(8)}
    assert len(seeds) == 24
    assert all(0 <= s < 2 ** 32 for s in seeds)
    assert parallel.rank_seed(5, 1) == parallel.rank_seed(5, 1)


# ------------------------------------------- in this process, without MPI

def test_an_evaluation_in_parts_combines_to_the_whole(mnist):
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    x = mnist[1].images[:250]  # batches of 100, 100 and 50
    options = dict(k=3, iw_samples=20, iw_chunk=7, batchsize=100,
                   progress=False, seed=7)
    whole = estimators.evaluate(model, x, **options)
    shares = [estimators.evaluate_share(model, x[:100], first_batch=0,
                                        **options),
              estimators.evaluate_share(model, x[100:], first_batch=1,
                                        **options)]
    parts = estimators.combine(shares, k=3, iw_samples=20, n_latent=2)
    for key in ('n', 'neg_elbo', 'reconstr', 'kl', 'neg_log_likelihood',
                'neg_log_likelihood_sem', 'active_units'):
        assert parts[key] == whole[key], key
    # the control: a part that forgets where it starts draws other noise
    wrong = estimators.evaluate_share(model, x[100:], **options)
    assert wrong['elbo_sums'] != shares[1]['elbo_sums']


def test_each_rank_of_a_machine_gets_its_own_gpu():
    assert device_lib.device_spec(0, None, 1) == '@cupy:1'
    assert device_lib.device_spec(2, None, 1) == '@cupy:3'
    assert device_lib.device_spec(-1, None, 1) == '@numpy'
    assert device_lib.device_spec(0, '@cupy:0', 1) == '@cupy:0'
    assert device_lib.device_spec(0) == '@cupy:0'


def test_without_a_communicator_one_process_decides_alone():
    alone = parallel.ONE_PROCESS
    assert alone.root_first(lambda: 5) == 5
    assert alone.agree(lambda: 6) == 6
    assert alone.any_rank(True) == [0]
    assert alone.any_rank(False) == []
    assert (alone.rank, alone.size) == (0, 1)
    error = ValueError('bad')
    assert alone.exit_status(error) == 'error: bad'
    with pytest.raises(ValueError, match='bad'):
        alone.agree(lambda: (_ for _ in ()).throw(error))
    assert not hasattr(error, '_vae_raised_on_every_rank')


class Untouchable:
    """Fails a test on any use: what the null must leave alone."""

    def __getattr__(self, name):
        raise AssertionError('the one-process role used .%s' % name)


class Extended:
    """A trainer's ``extend``, recorded."""

    def __init__(self):
        self.extensions = []

    def extend(self, extension, name=None):
        self.extensions.append((extension, name))


def test_the_one_process_role_does_nothing():
    from vae.data.binarize import DynamicBinarized
    alone = parallel.ONE_PROCESS
    images = numpy.full((3, 4), 0.5, numpy.float32)
    dynamic = DynamicBinarized(images, seed=1)
    assert alone.share(images) is images
    assert alone.share(images, seed=3) is images
    assert alone.share(dynamic, seed=3) is dynamic
    calls = []
    assert alone.root_first(lambda: calls.append('root') or 7) == 7
    assert alone.agree(lambda: calls.append('agree') or 8) == 8
    assert calls == ['root', 'agree']  # each called once
    optimizer = Untouchable()
    assert alone.optimizer(optimizer) is optimizer
    alone.start_optimizer(optimizer, Untouchable())
    state = numpy.random.get_state()[1].copy()
    alone.own_stream(Untouchable(), 5)  # the run's stream goes on
    assert (numpy.random.get_state()[1] == state).all()
    assert alone.rank_seed(5) == 5
    assert (alone.intra_rank, alone.is_root) == (0, True)
    # rank 0's file is this process's own: the path, nothing read
    assert alone.file_from_root('no/such/snapshot') == 'no/such/snapshot'
    assert alone.file_from_root(None) is None
    func = len
    assert alone.with_progress(func) is func
    assert alone.where([0], float('nan')) == '(nan)'
    assert alone.of_each == '' and alone.cuda_graph_obstacle is None
    alone.barrier()
    trainer, evaluator = Extended(), object()
    alone.extend_evaluator(trainer, evaluator, ('main/loss',))
    assert trainer.extensions == [(evaluator, None)]
    with alone.watched(0.01) as dog:
        assert dog is None
        time.sleep(0.05)  # nothing watches: nothing aborts
    with pytest.raises(SystemExit) as info:
        alone.abort('error: alone')
    assert info.value.code == 'error: alone'


def test_the_one_process_role_keeps_its_random_states_in_snapshots():
    from vae.train import extensions
    trainer = Extended()
    parallel.ONE_PROCESS.extend_states(trainer, Untouchable())
    (state, name), = trainer.extensions
    assert isinstance(state, extensions.NumpyRandomState) and name is None
    trainer = Extended()
    parallel.ONE_PROCESS.extend_states(trainer, Untouchable(),
                                       numpy.random.default_rng(0))
    assert [name for _, name in trainer.extensions] == [
        None, 'DataRandomState']


def test_the_one_process_role_has_the_interface_of_the_ranks():
    def interface(cls):
        return {name for name in vars(cls) if not name.startswith('_')}
    assert interface(parallel.OneProcess) == interface(parallel.Ranks)
    ranks = parallel.Ranks(FakeComm(rank=1, size=3))
    assert (ranks.rank, ranks.size, ranks.is_root) == (1, 3, False)
    assert ranks.rank_seed(5) == parallel.rank_seed(5, 1) != 5
    assert ranks.where([0, 2], float('nan')) == 'on rank 0, 2'
    assert ranks.of_each == ' of each of the 3 ranks'


def test_noise_per_batch_on_the_device_equals_the_cpus(monkeypatch, mnist):
    from standin import stand_in_gpu
    numpy.random.seed(0)
    model = VAE(784, 2, 8, 'softplus')
    x = mnist[1].images[:120]
    options = dict(k=3, iw_samples=10, iw_chunk=4, batchsize=50,
                   progress=False, seed=11)
    expected = estimators.evaluate(model, x, **options)
    with stand_in_gpu(monkeypatch) as gpu:
        model.to_device(gpu)
        got = estimators.evaluate(model, x, **options)
        # the device's generator restarted before each batch of each part
        assert gpu.xp.random.seeds == [
            estimators.batch_seed(11, part, batch)
            for part in (0, 1) for batch in range(3)]
    for key in ('neg_elbo', 'neg_log_likelihood', 'active_units'):
        assert got[key] == expected[key], key


def test_without_the_mpi_extra_the_flag_says_what_to_install(
        monkeypatch, tmp_path, mnist_dir):
    monkeypatch.setitem(sys.modules, 'mpi4py', None)  # import fails
    monkeypatch.setitem(sys.modules, 'mpi4py.MPI', None)
    with pytest.raises(SystemExit) as info:
        command('train').main(SMALL + ['--data-dir', mnist_dir,
                                           '-o', str(tmp_path / 'run')])
    message = str(info.value.code)
    assert message.startswith('error: --communicator needs mpi4py and an '
                              'MPI library (')
    assert message.endswith('install them with pip install -e ".[mpi]"')
    assert not (tmp_path / 'run').exists()


# --- a rank that makes no progress: --rank-timeout --------------------------

def test_a_stopped_rank_ends_the_job_after_the_rank_timeout(
        mpiexec, mnist_dir, tmp_path):
    # rank 1 stops (SIGSTOP) before iteration 3 without dying; rank 0 waits
    # for its gradients, and its watchdog ends the job
    code, out, err, seconds = train(
        mpiexec, tmp_path / 'run', mnist_dir, '-e', '2', '--rank-timeout',
        '4', probes=tmp_path / 'p', fault='--fault=stop@1:3')
    assert code != 0
    assert ('error: no progress on rank 0 of 2 for 4 s (--rank-timeout): '
            'this rank, or a rank it waits for, is stopped or hangs; '
            'stopping every rank' in err), err
    assert seconds < TIMEOUT


class FakeComm:
    """The part of a ChainerMN communicator the watchdog uses: its rank
    and size, and ``mpi_comm.Abort``, which records its code here."""

    def __init__(self, rank=1, size=2):
        self.rank, self.size = rank, size
        self.aborted = []
        self.mpi_comm = self

    def Abort(self, code):
        self.aborted.append(code)


def wait_for(condition, seconds=10):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


def test_a_watchdog_without_progress_aborts_the_job(monkeypatch, capsys):
    monkeypatch.setattr(parallel, 'ABORT_GRACE', 0)
    comm = FakeComm()
    with parallel.Ranks(comm).watched(0.3) as dog:
        assert isinstance(dog, watchdog.Watchdog)
        assert wait_for(lambda: comm.aborted)
    assert comm.aborted == [1]
    err = capsys.readouterr().err
    assert err.startswith('error: no progress on rank 1 of 2 for 0.3 s '
                          '(--rank-timeout): this rank, or a rank it waits '
                          'for, is stopped or hangs; stopping every rank'), err
    assert err.count('\n') == 1


def test_progress_keeps_the_watchdog_quiet(monkeypatch):
    monkeypatch.setattr(parallel, 'ABORT_GRACE', 0)
    comm = FakeComm()
    with parallel.Ranks(comm).watched(1.0) as dog:
        for _ in range(40):  # 2 s, twice the timeout
            watchdog.progress()
            time.sleep(0.05)
        assert dog.idle() < 1.0
    assert comm.aborted == []
    assert not dog._thread.is_alive()
    assert watchdog._watchdog is None
    watchdog.progress()  # without a watchdog: nothing


def test_no_watchdog_alone_or_with_no_limit():
    with parallel.ONE_PROCESS.watched(5) as dog:
        assert dog is None
    with parallel.Ranks(FakeComm()).watched(0) as dog:
        assert dog is None


def test_training_and_evaluation_say_they_progress(
        monkeypatch, tmp_path, mnist_dir, mnist):
    calls = []
    monkeypatch.setattr(watchdog, 'progress',
                        lambda: calls.append(None))
    assert command('train').main(
        ['--test', '--n-hidden', '16', '-z', '2', '--no-progress',
         '--data-dir', mnist_dir, '-o', str(tmp_path / 'run'), '-e',
         '1']) == 0
    assert len(calls) >= 10  # 1000 images, batches of 100: every update
    del calls[:]
    numpy.random.seed(0)
    estimators.evaluate(VAE(784, 2, 8), mnist[1].images[:120], k=2,
                        iw_samples=10, iw_chunk=4, batchsize=50,
                        progress=False)
    assert len(calls) == 3 + 3 * 3  # 3 batches of the ELBO; 3 chunks each


@pytest.mark.parametrize('value', ['-1', 'inf', 'nan', 'soon'])
def test_a_rank_timeout_that_is_not_a_duration_is_refused(value, capsys):
    with pytest.raises(SystemExit) as info:
        command('evaluate').main(['-m', 'x.npz', '--rank-timeout',
                                      value])
    assert info.value.code == 2
    assert '--rank-timeout' in capsys.readouterr().err
