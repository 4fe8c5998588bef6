"""The CUDA-graph path (vae/kernels/cuda_graph.py), run on the CPU.

Its arithmetic is vae/kernels/fused.py, which the fast path's tests check against
Chainer bit for bit; here the step built from it, its Adam, its guard, its
updater, its resume and its cuBLAS calls run on the stand-in GPU of
tests/standin.py, with a NumPy model of cuBLAS's column-major sgemm standing
in for nvmath-python. The capture itself is checked with a recording stream
(a CPU cannot record a CUDA graph); in the training tests the "graph" is the
step called again, which is what a replay computes. What only a GPU checks:
that CuPy captures these kernels, and the speed (tests/test_gpu.py,
scripts/benchmark.py --gpu 0).
"""

import chainer
import numpy
import pytest

import ckernels
from standin import fake_nvmath, replaying_capture, stand_in_gpu
from testutil import interrupt_at, poison_graph_at, read_log, tiny_config
from vae.kernels import cuda_graph
from vae.train import graph_updater
from vae.kernels import cublas as cublas_lib
from vae.kernels import fused
from vae.train import trainer as trainer_lib
from vae.train import updater
from vae import device as device_lib
from vae.model import VAE
from vae.train.model_files import load_model


def capture_like_cuda(monkeypatch):
    """Captures on the stand-in's streams, under CUDA's rules; each replay
    calls the captured step again, under the same rules."""
    monkeypatch.setattr(device_lib, 'capture',
                        replaying_capture(device_lib.capture))


@pytest.fixture
def gpu(monkeypatch):
    with stand_in_gpu(monkeypatch) as device, fake_nvmath(monkeypatch):
        capture_like_cuda(monkeypatch)
        yield device


@pytest.mark.numerics
@pytest.mark.parametrize('transpose_a', [False, True])
@pytest.mark.parametrize('transpose_b', [False, True])
def test_cublas_dot_is_the_row_major_product(monkeypatch, transpose_a,
                                             transpose_b):
    rng = numpy.random.RandomState(0)
    m, k, n = 5, 7, 3
    a = rng.randn(*((k, m) if transpose_a else (m, k))).astype(numpy.float32)
    b = rng.randn(*((n, k) if transpose_b else (k, n))).astype(numpy.float32)
    a = a.T if transpose_a else a  # (m, k), maybe a transposed view
    b = b.T if transpose_b else b  # (k, n)
    with stand_in_gpu(monkeypatch) as device, \
            fake_nvmath(monkeypatch) as cublas:
        stream = device_lib.stream(device)
        dot = cublas_lib.CublasDot(device.xp, stream)
        got = dot(a, b)
        out = numpy.full((m, n), numpy.nan, dtype=numpy.float32)
        assert dot(a, b, out=out) is out
    expected = numpy.dot(a.astype(numpy.float64), b.astype(numpy.float64))
    numpy.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    numpy.testing.assert_array_equal(out, got)
    assert cublas.sgemm_calls == 2
    handle, = cublas.handles.values()
    assert handle == {'stream': stream.ptr,
                      'workspace': cublas_lib.WORKSPACE_BYTES}


def test_cublas_dot_refuses_what_it_cannot_pass(monkeypatch):
    with stand_in_gpu(monkeypatch) as device, fake_nvmath(monkeypatch):
        dot = cublas_lib.CublasDot(device.xp, device_lib.stream(device))
        a = numpy.zeros((4, 6), numpy.float32)
        with pytest.raises(ValueError, match='do not align'):
            dot(a, a)
        with pytest.raises(ValueError, match='C-contiguous'):
            dot(a[:, ::2], numpy.zeros((3, 2), numpy.float32))


class RecordingStream(object):
    def __init__(self):
        self.events = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def begin_capture(self):
        self.events.append('begin')

    def end_capture(self):
        self.events.append('end')
        stream = self

        class Graph(object):
            def launch(self, on):
                stream.events.append(('launch', on))
        return Graph()


def test_capture_records_one_call_and_replays_the_graph(monkeypatch):
    with stand_in_gpu(monkeypatch) as device:
        stream = RecordingStream()
        replay = device_lib.capture(device, stream,
                                    lambda: stream.events.append('call'))
        assert stream.events == ['begin', 'call', 'end']
        replay()
        replay()
    assert stream.events[3:] == [('launch', stream)] * 2


def step_and_model(device, batch=8, k=1, C=1.0, seed=0, dot=None):
    numpy.random.seed(seed)
    model = VAE(784, 3, 16, 'softplus')
    model.to_device(device)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    step = cuda_graph.FusedStep(model, optimizer, batch, k, C,
                                dot or device.xp.dot)
    return step, model, optimizer


@pytest.mark.numerics
@pytest.mark.parametrize('k,C', [(1, 1.0), (3, 0.5)])
@pytest.mark.parametrize('schedule', [False, True],
                         ids=['constant', 'scheduled'])
def test_a_fused_step_is_chainers_adam_step_bit_for_bit(gpu, images, k, C,
                                                        schedule):
    step, model, optimizer_of_step = step_and_model(gpu, k=k, C=C)
    numpy.random.seed(0)
    reference = VAE(784, 3, 16, 'softplus')  # the same initial weights
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(reference)
    x = images[0][:8]
    eps = numpy.random.RandomState(1).standard_normal(
        (3, k * 8, 3)).astype(numpy.float32)
    for i in range(3):
        if schedule and i:  # as ExponentialShift('alpha', 0.5) and a beta
            for opt in (optimizer, optimizer_of_step):
                opt.alpha *= 0.5
                opt.beta1 = 0.8
            step.load_hyperparams()
        step.x[...] = x
        step.eps[...] = eps[i]
        step.run()
        draws = iter([eps[i]])
        original = device_lib.standard_normal
        device_lib.standard_normal = lambda xp, shape, dtype: next(draws)
        try:
            optimizer.update(reference.get_loss_func(C=C, k=k), x)
        finally:
            device_lib.standard_normal = original
    params = dict(reference.namedparams())
    for name, param in model.namedparams():
        numpy.testing.assert_array_equal(
            device_lib.to_cpu(param.array), params[name].array, name)
    assert float(step.t) == 3 and bool(step.keep)


@pytest.mark.numerics
@pytest.mark.parametrize('capture', [True, False])
def test_warm_up_and_capture_leave_the_step_as_it_was(gpu, images, capture):
    # the warm-up runs a step (a capture only records one): the state is
    # saved before it, else every run starts one Adam step ahead
    assert device_lib.use_stream_ordered_memory(gpu) is None
    stream = device_lib.stream(gpu)
    with device_lib.current(gpu), stream:  # as GraphUpdater builds it
        step, _, _ = step_and_model(
            gpu, dot=cublas_lib.CublasDot(gpu.xp, stream))
        step.x[...] = images[0][:8]
        before = [buffer.copy() for buffer in step.state()]
        replay = cuda_graph.warm_up_and_capture(gpu, stream, step, capture)
        for got, want in zip(step.state(), before):
            numpy.testing.assert_array_equal(got, want)
        replay()
    assert float(step.t) == 1 and int(step.iteration) == 1
    assert not numpy.array_equal(step.P, before[0])


class ReadCounter(object):
    """An optimizer's ``hyperparam`` that counts the reads of its values."""

    def __init__(self, hyperparam):
        self.__dict__['_hyperparam'] = hyperparam
        self.__dict__['reads'] = 0

    def __getattr__(self, name):
        self.__dict__['reads'] += 1
        return getattr(self._hyperparam, name)

    def __setattr__(self, name, value):
        setattr(self._hyperparam, name, value)


def test_a_step_reads_adams_hyperparameters_from_the_device(gpu, images):
    # a CUDA graph freezes every host value its capture read: a step that
    # read alpha from Python would replay the alpha of the capture forever
    numpy.random.seed(0)
    model = VAE(784, 3, 16, 'softplus')
    model.to_device(gpu)
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    optimizer.hyperparam = counter = ReadCounter(optimizer.hyperparam)
    step = cuda_graph.FusedStep(model, optimizer, 8, 1, 1.0, gpu.xp.dot)
    step.x[...] = images[0][:8]
    read = counter.reads
    step.run()
    assert counter.reads == read  # none during the step
    numpy.testing.assert_array_equal(
        step.hyper, [1e-3, 0.9, 0.999, 1e-8, 1.0])


def scheduled_run(out, device, images, cuda_graph, shift):
    """The parameters after 45 iterations of a trainer whose Adam's alpha
    ``ExponentialShift`` halves every 5 (where ``shift``)."""
    device_lib.seed(device, 0)
    model = VAE(784, 3, 16, 'softplus')
    model.to_device(device)
    path = trainer_lib.training_path(model, device, 1e-3, fast=False,
                                  cuda_graph=cuda_graph)
    assert path.name == ('graph' if cuda_graph else 'plain')
    path.optimizer.setup(model)
    # rows read on the host: the graph takes the plain path's batches
    iterator = chainer.iterators.SerialIterator(HostRows(images[0]), 20)
    trainer = chainer.training.Trainer(
        path.make_updater(iterator, path.optimizer, 0, 1.0, 1),
        (45, 'iteration'), out=str(out))
    if shift:
        trainer.extend(chainer.training.extensions.ExponentialShift(
            'alpha', 0.5), trigger=(5, 'iteration'))
    with device_lib.current(device):
        trainer.run()
    assert path.optimizer.alpha == (1e-3 * 0.5 ** 9 if shift else 1e-3)
    return {name: device_lib.to_cpu(p.array)
            for name, p in model.namedparams()}


@pytest.mark.numerics
def test_a_schedule_of_adams_alpha_reaches_the_graph(tmp_path, gpu, images):
    # the graph reads Adam's hyperparameters from device memory; frozen
    # at the capture, the schedule would be silently ignored
    plain = scheduled_run(tmp_path, gpu, images, False, shift=True)
    graph = scheduled_run(tmp_path, gpu, images, True, shift=True)
    constant = scheduled_run(tmp_path, gpu, images, True, shift=False)
    for name, array in plain.items():
        numpy.testing.assert_allclose(graph[name], array, rtol=1e-4,
                                      atol=1e-6, err_msg=name)
    assert max(numpy.abs(constant[name] - array).max()
               for name, array in plain.items()) > 1e-3


@pytest.mark.numerics
def test_a_non_finite_loss_freezes_the_step(gpu, images):
    step, model, _ = step_and_model(gpu)
    step.x[...] = images[0][:8]
    step.run()
    step.run()
    before = step.P.copy(), step.M.copy(), step.V.copy()
    step.x[...] = numpy.nan
    step.run()
    assert not numpy.isfinite(float(step.loss))  # reported as it was
    step.x[...] = images[0][8:16]  # finite again: still frozen
    step.run()
    for got, want in zip((step.P, step.M, step.V), before):
        numpy.testing.assert_array_equal(got, want)
    assert not bool(step.keep) and int(step.first_bad) == 2
    assert float(step.t) == 2 and int(step.iteration) == 4


@pytest.mark.numerics
def test_the_fused_evaluation_loss_is_get_loss_funcs(gpu, images):
    numpy.random.seed(0)
    model = VAE(784, 3, 16, 'softplus')
    made_before_the_move = model.get_loss_func(C=0.7, k=10, fused=True)
    model.to_device(gpu)
    x = gpu.send(images[1][:20])
    values = []
    for loss_func in (model.get_loss_func(C=0.7, k=10),
                      model.get_loss_func(C=0.7, k=10, fused=True),
                      made_before_the_move):
        numpy.random.seed(4)
        device_lib.reseed(gpu, 3)  # the device's own generator alone
        with chainer.using_config('train', False):
            values.append(float(loss_func(x).array))
    # equal only where every loss drew its noise from the device's
    # generator (NumPy's was seeded otherwise)
    assert values[1] == values[0] and values[2] == values[0]


@pytest.fixture
def images(small_mnist):
    return small_mnist


class HostRows(object):
    """A dataset of the rows of an array that is no array: the graph path
    reads its batches on the host, as the plain path does."""

    def __init__(self, array):
        self._array = array

    def __len__(self):
        return len(self._array)

    def __getitem__(self, index):
        return self._array[index]


def train(out, images, device, host=False, **overrides):
    """A run of the tiny model on ``device`` (its training set given as
    :class:`HostRows` where ``host``)."""
    overrides.setdefault('batchsize', 20)  # 15 iterations an epoch
    data = HostRows(images[0]) if host else images[0]
    return trainer_lib.train(tiny_config(**overrides), str(out), data,
                          images[1], device, progress=False)


@pytest.mark.numerics
def test_the_graph_path_trains_as_the_plain_one(tmp_path, monkeypatch, gpu,
                                                images, capsys):
    # the training set read on the host: the plain path's batches and noise
    replays = []
    original = graph_updater.GraphUpdater.update_core

    def counted(self):
        replays.append(self.iteration)
        original(self)

    monkeypatch.setattr(graph_updater.GraphUpdater, 'update_core', counted)
    # 15 iterations an epoch, 240 in all
    train(tmp_path / 'plain', images, gpu, epoch=16, host=True)
    assert replays == []
    train(tmp_path / 'graph', images, gpu, epoch=16, cuda_graph=True,
          host=True)
    assert replays == list(range(240))
    assert 'without the CUDA graph' not in capsys.readouterr().err
    plain, graph = read_log(tmp_path / 'plain'), read_log(tmp_path / 'graph')
    for a, b in zip(plain, graph):
        for key in ('main/loss', 'main/kl', 'validation/main/loss',
                    'validation/main/reconstr'):
            assert b[key] == pytest.approx(a[key], rel=1e-5), (a, b)
    assert plain[-1]['main/loss'] < plain[0]['main/loss'] - 50
    a = load_model(tmp_path / 'plain' / 'model.npz')
    b = dict(load_model(tmp_path / 'graph' / 'model.npz').namedparams())
    for name, param in a.namedparams():
        numpy.testing.assert_allclose(b[name].array, param.array, rtol=1e-3,
                                      atol=1e-5, err_msg=name)


def draws_of_epoch(device, seed, epoch, n, shape):
    """The order of ``n`` images and the noise of ``shape`` that the graph
    path draws at the start of ``epoch`` (GraphUpdater.draw_epoch), as the
    documentation says: one call each, from the device's generator seeded
    with (seed, epoch)."""
    with device_lib.current(device):
        device_lib.reseed(device, device_lib.epoch_seed(seed, epoch))
        order = device_lib.to_cpu(device.xp.random.permutation(n))
        noise = device_lib.standard_normal(device.xp, shape, numpy.float32)
    return order, device_lib.to_cpu(noise)


@pytest.mark.numerics
@pytest.mark.parametrize('k', [1, 2])
def test_the_graph_gathers_each_epochs_draws_on_the_device(
        tmp_path, monkeypatch, gpu, images, k):
    # Chainer's own step, fed the batches and the noise the documentation
    # says the graph draws for each epoch, gives the graph's log and weights
    def from_host(self):
        raise AssertionError('a batch read on the host')

    monkeypatch.setattr(graph_updater.GraphUpdater, '_update_from_host',
                        from_host)
    train(tmp_path / 'graph', images, gpu, epoch=2, k=k, cuda_graph=True)
    config = tiny_config(epoch=2, k=k, batchsize=20)
    device_lib.seed(gpu, config.seed)
    model = trainer_lib.build_model(config)
    model.to_device(gpu)
    optimizer = chainer.optimizers.Adam(alpha=config.alpha)
    optimizer.setup(model)
    loss_func = model.get_loss_func(C=config.C, k=k)
    data, batch = images[0], 20
    batches = len(data) // batch
    standard_normal = device_lib.standard_normal
    means, draws = [], {}
    for epoch in range(2):
        monkeypatch.setattr(device_lib, 'standard_normal',
                            standard_normal)  # the original, to draw
        order, noise = draws_of_epoch(
            gpu, config.seed, epoch, len(data),
            (batches * k * batch, config.n_latent))
        losses = []
        monkeypatch.setattr(device_lib, 'standard_normal',
                            lambda xp, shape, dtype: next(draws['eps']))
        for j in range(batches):
            draws['eps'] = iter([noise[j * k * batch:(j + 1) * k * batch]])
            x = gpu.send(data[order[j * batch:(j + 1) * batch]])
            with device_lib.current(gpu):
                optimizer.update(lambda x: losses.append(loss_func(x))
                                 or losses[-1], x)
        means.append(numpy.mean([float(v.array) for v in losses]))
    log = read_log(tmp_path / 'graph')
    for entry, mean in zip(log, means):
        assert entry['main/loss'] == pytest.approx(mean, rel=1e-5)
    trained = dict(load_model(tmp_path / 'graph' / 'model.npz')
                   .namedparams())
    for name, param in model.namedparams():
        numpy.testing.assert_allclose(
            trained[name].array, device_lib.to_cpu(param.array), rtol=1e-3,
            atol=1e-5, err_msg=name)


@pytest.mark.numerics
def test_a_resumed_graph_run_equals_an_uninterrupted_one(
        tmp_path, monkeypatch, gpu, images):
    train(tmp_path / 'straight', images, gpu, cuda_graph=True)
    interrupt_at(monkeypatch, 40, graph_updater.GraphUpdater)  # in epoch 3
    with pytest.raises(trainer_lib.TrainingInterrupted):
        train(tmp_path / 'resumed', images, gpu, cuda_graph=True)
    monkeypatch.undo()
    with stand_in_gpu(monkeypatch) as fresh, fake_nvmath(monkeypatch):
        capture_like_cuda(monkeypatch)
        train(tmp_path / 'resumed', images, fresh, cuda_graph=True)
    a = load_model(tmp_path / 'straight' / 'model.npz')
    b = dict(load_model(tmp_path / 'resumed' / 'model.npz').namedparams())
    for name, param in a.namedparams():
        numpy.testing.assert_array_equal(param.array, b[name].array, name)
    assert read_log(tmp_path / 'straight', times=False) == read_log(
        tmp_path / 'resumed', times=False)


@pytest.mark.numerics
def test_a_graph_run_on_gpu_1_equals_one_on_gpu_0(tmp_path, monkeypatch,
                                                  images):
    # the step's stream belongs to GPU 1: entering it while GPU 0 is
    # current fails in CuPy 14, and the noise must come from GPU 1's
    # seeded generator
    logs = []
    for index in (0, 1):
        with stand_in_gpu(monkeypatch, index) as device, \
                fake_nvmath(monkeypatch):
            capture_like_cuda(monkeypatch)
            train(tmp_path / str(index), images, device, epoch=2,
                  cuda_graph=True)
            assert device.xp.random.states.keys() == {index}
        logs.append(read_log(tmp_path / str(index), times=False))
    assert logs[1] == logs[0]


def test_the_graphs_guard_stops_at_the_epochs_end_naming_the_iteration(
        tmp_path, monkeypatch, gpu, images):
    out = tmp_path / 'run'
    poison_graph_at(monkeypatch, 37)  # NaN pixels, a NaN loss
    with pytest.raises(updater.NonFiniteLossError) as info:
        train(out, images, gpu, cuda_graph=True)
    assert str(info.value).startswith(
        'non-finite loss at iteration 37; the CUDA graph applied neither '
        'that update nor any later one; what it had written is intact: '
        'snapshot_epoch_2, model.npz')
    assert not (out / 'snapshot_epoch_3').exists()
    assert [e['epoch'] for e in read_log(out)] == [1, 2]


def test_without_nvmath_the_graph_path_falls_back_with_a_note(
        tmp_path, monkeypatch, images, capsys):
    import sys
    with stand_in_gpu(monkeypatch) as device:
        monkeypatch.setitem(sys.modules, 'nvmath', None)
        train(tmp_path / 'run', images, device, epoch=1, cuda_graph=True)
    err = capsys.readouterr().err
    assert ('note: the CUDA-graph path needs nvmath-python (pip install '
            'nvmath-python, or the extra .[gpu-graph]); training without the '
            'CUDA graph') in err


def test_where_no_cublas_handle_can_be_made_it_falls_back_with_a_note(
        tmp_path, monkeypatch, images, capsys):
    # nvmath-python imports without a driver or a libcublas
    with stand_in_gpu(monkeypatch) as device, \
            fake_nvmath(monkeypatch) as cublas:
        cublas.create_error = OSError('libcublas.so.12: cannot open shared '
                                      'object file')
        train(tmp_path / 'run', images, device, epoch=1, cuda_graph=True)
    assert ('note: nvmath-python cannot create a cuBLAS handle (OSError: '
            'libcublas.so.12: cannot open shared object file); training '
            'without the CUDA graph') in capsys.readouterr().err
    assert read_log(tmp_path / 'run')[0]['epoch'] == 1


def test_the_nvmath_check_leaves_no_handle_behind(monkeypatch):
    with stand_in_gpu(monkeypatch) as device, \
            fake_nvmath(monkeypatch) as cublas:
        model = VAE(784, 2, 8, 'softplus')
        assert cuda_graph.unsupported_reason(model, device) is None
    assert cublas.created == 1 and cublas.handles == {}


def test_on_the_cpu_the_graph_path_says_it_needs_a_gpu(capsys):
    model = VAE(784, 2, 8, 'softplus')
    path = trainer_lib.training_path(model, device_lib.get_device(-1), 1e-3,
                                  fast=True, cuda_graph=True)
    assert path.name == 'fast'
    assert 'the CUDA-graph path needs a GPU' in capsys.readouterr().err


@pytest.mark.parametrize('index', [0, 1])
def test_the_benchmark_times_the_three_gpu_paths(monkeypatch, index):
    # the benchmark drives the updaters without a trainer: each makes its
    # device current itself (GPU 1's stream refuses GPU 0)
    from testutil import load_script
    benchmark = load_script('benchmark')
    with stand_in_gpu(monkeypatch, index) as gpu, fake_nvmath(monkeypatch):
        capture_like_cuda(monkeypatch)
        result = benchmark.benchmark(gpu, batch_sizes=(20,), rounds=1,
                                     steps=2, warmup=1, square=32,
                                     paths=benchmark.GPU_PATHS)
    assert [r['path'] for r in result['rows']] == [
        'plain', 'fused-eager', 'graph']
    assert all(r['s_per_step'] > 0 and r['peak_memory_bytes'] > 0
               for r in result['rows'])


def setup_constant(name):
    """The value of a list of strings assigned to ``name`` in setup.py."""
    import ast
    from testutil import ROOT
    tree = ast.parse((ROOT / 'setup.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and \
                [t.id for t in node.targets] == [name]:
            return ast.literal_eval(node.value)
    raise KeyError(name)


def test_the_gpu_graph_extra_is_built_for_cuda_12():
    # nvmath-python alone pulled cuda-bindings 13 beside cupy-cuda12x
    from packaging.requirements import Requirement
    wanted = {r.name: r for r in map(Requirement, setup_constant('GPU_GRAPH'))}
    assert set(wanted) == {'cupy-cuda12x', 'nvmath-python', 'cuda-bindings'}
    assert wanted['nvmath-python'].extras == {'cu12'}
    assert wanted['nvmath-python'].specifier.contains('1.0.1')
    bindings = wanted['cuda-bindings'].specifier
    assert bindings.contains('12.9.0')
    assert not bindings.contains('13.0.0')


def captured_step(gpu, k=1, activation='softplus', pool=True, data=None):
    """A step of a small model captured on ``gpu`` as GraphUpdater captures
    it (CuPy's allocator the stream-ordered pool where ``pool``)."""
    if pool:
        assert device_lib.use_stream_ordered_memory(gpu) is None
    stream = device_lib.stream(gpu)
    with device_lib.current(gpu), stream:
        numpy.random.seed(0)
        model = VAE(784, 3, 16, activation)
        model.to_device(gpu)
        optimizer = chainer.optimizers.Adam()
        optimizer.setup(model)
        step = cuda_graph.FusedStep(model, optimizer, 8, k, 1.0,
                                    cublas_lib.CublasDot(gpu.xp, stream))
        if data is not None:  # batches gathered in the graph
            step.gather_from(gpu.send(data), len(data) // 8)
        replay = cuda_graph.warm_up_and_capture(gpu, stream, step)
    return step, replay


#: Kernels one captured step launches at k = 1: 24 in the forward (7
#: products, 7 bias additions, 4 activations, the sample, 2 terms and
#: their 2 sums, the loss), 28 in the backward (13 products, 7 bias
#: sums, 4 activation gradients, 3 for the sample and KL, 1 addition), 1
#: Adam. k > 1 adds the 2 sums over the copies; gathering the batch and
#: its noise in the graph, 2 more.
LAUNCHES_PER_STEP = 53


@pytest.mark.parametrize('activation', fused.KERNELS)
@pytest.mark.parametrize('k', [1, 3])
@pytest.mark.parametrize('gather', [False, True])
def test_a_captured_step_launches_53_kernels_and_allocates_nothing(
        gpu, images, k, activation, gather):
    step, replay = captured_step(gpu, k, activation,
                                 data=images[0] if gather else None)
    step.x[...] = images[0][:8]
    launches, allocations = gpu.xp.launches, gpu.xp.capture_allocations
    replay()
    assert gpu.xp.launches - launches == \
        LAUNCHES_PER_STEP + 2 * (k > 1) + 2 * gather
    assert gpu.xp.capture_allocations == allocations
    assert float(step.t) == 1 and bool(step.keep)


def test_without_the_pool_a_capture_of_the_step_succeeds(gpu, images):
    # outside the stream-ordered pool the stand-in refuses any allocation
    # during a capture: the step makes none
    step, replay = captured_step(gpu, pool=False)
    step.x[...] = images[0][:8]
    replay()
    assert int(step.iteration) == 1


@pytest.mark.numerics
@pytest.mark.skipif(ckernels.compiler() is None,
                    reason='no C compiler (cc or gcc) found')
@pytest.mark.parametrize('k', [1, 2])
def test_the_step_with_the_compiled_c_kernels_is_the_numpy_step(
        gpu, images, k):
    # the C bodies a GPU compiles, in the step's wiring (argument order,
    # broadcasts, in-place updates), against their NumPy references
    eps = numpy.random.RandomState(1).standard_normal(
        (3, k * 8, 3)).astype(numpy.float32)
    results = []
    for compiled in (False, True):
        gpu.xp.compiled_kernels = compiled
        step, replay = captured_step(gpu, k)
        start = device_lib.to_cpu(step.P)
        losses = []
        for i in range(3):
            step.x[...] = images[0][8 * i:8 * (i + 1)]
            step.eps[...] = eps[i]
            replay()
            losses.append(float(step.loss))
        results.append((losses, device_lib.to_cpu(step.P)))
    gpu.xp.compiled_kernels = False
    (loss_np, p_np), (loss_c, p_c) = results
    numpy.testing.assert_allclose(loss_c, loss_np, rtol=1e-5)
    numpy.testing.assert_allclose(p_c, p_np, rtol=1e-4, atol=1e-6)
    assert numpy.abs(p_np - start).max() > 1e-3  # trained


NUMPY_2 = int(numpy.__version__.split('.')[0]) >= 2


@pytest.mark.numerics
def test_the_epochs_means_are_reported_once_as_summary_computes_them(
        gpu, images):
    # the graph sums the values on the device; the means reported at the
    # epoch's end are what LogReport's Summary made of 15 reports
    numpy.random.seed(0)
    model = VAE(784, 3, 16, 'softplus')
    model.to_device(gpu)
    path = trainer_lib.training_path(model, gpu, 1e-3, cuda_graph=True)
    path.optimizer.setup(model)
    iterator = chainer.iterators.SerialIterator(images[0], 20)  # 15 a pass
    graph = path.make_updater(iterator, path.optimizer, 0, 1.0, 1)
    reporter = chainer.Reporter()
    reporter.add_observer('main', model)
    observed, summaries = [], {}
    for i in range(30):
        observation = {}
        with reporter.scope(observation):
            graph.update()
        observed.append(sorted(observation))
        for name in ('loss', 'reconstr', 'kl'):
            value = getattr(graph._step, name).copy()
            summaries.setdefault(name, chainer.reporter.Summary()).add(value)
        if i in (14, 29):
            for name, summary in summaries.items():
                # exact where NumPy promotes as CuPy does (NumPy 2: Python
                # numbers weak, 0-d arrays kept); NumPy 1 turns the 0-d
                # values into scalars and Summary's sum into float64
                assert float(observation['main/' + name]) == pytest.approx(
                    float(summary.compute_mean()),
                    rel=0 if NUMPY_2 else 1e-6), name
            summaries = {}
    assert observed == ([[]] * 14 + [['main/kl', 'main/loss',
                                      'main/reconstr']]) * 2
