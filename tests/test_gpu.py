"""The model, its loss, Adam and the train command on a real GPU (CuPy).

Skipped cleanly where CuPy or a CUDA GPU is absent (CI has neither; the
stand-in of tests/test_device.py runs the same code paths there). Each test
compares the GPU with the CPU on the same weights and the same noise: the
noise goes through vae.device.standard_normal, which these tests replace by
draws from one NumPy generator, sent to whichever device asks.
"""
import os

import numpy
import pytest

import testutil
from testutil import gpu_available, interrupt_at, poison_graph_at, read_log
from vae import VAE, Xavier, device as device_lib
from vae.eval import estimators
from vae.train.model_files import load_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not gpu_available(), reason='needs CuPy and a CUDA GPU')]

@pytest.fixture
def fixed_noise(monkeypatch):
    """Make every noise draw come from NumPy's RandomState(seed), on the
    device that asks; call it with a seed to restart the stream."""
    import cupy
    streams = {}

    def restart(seed):
        streams['rng'] = numpy.random.RandomState(seed)

    def draw(xp, shape, dtype):
        eps = streams['rng'].standard_normal(shape).astype(dtype)
        return eps if xp is numpy else cupy.asarray(eps)

    restart(0)
    monkeypatch.setattr(device_lib, 'standard_normal', draw)
    return restart


def models(n_in=20, n_latent=3, n_h=16):
    import cupy  # NOQA: F401
    numpy.random.seed(0)
    cpu = VAE(n_in, n_latent, n_h, 'softplus')
    gpu = cpu.copy(mode='copy')
    gpu.to_device('@cupy:0')
    return cpu, gpu


def assert_close(gpu_array, cpu_array, rtol=1e-5, name=''):
    got = device_lib.to_cpu(gpu_array)
    scale = numpy.abs(cpu_array).max() + 1e-30
    assert numpy.abs(got - cpu_array).max() / scale < rtol, name


def test_xavier_fills_cupy_arrays_with_cupy():
    import cupy
    w = cupy.zeros((300, 400), dtype=cupy.float32)
    Xavier(400, 300)(w)
    bound = numpy.sqrt(6.0 / 700)
    assert isinstance(w, cupy.ndarray)
    assert float(abs(w).max()) <= bound
    assert float(w.var()) == pytest.approx(2.0 / 700, rel=0.05)


@pytest.mark.numerics
@pytest.mark.parametrize('fused', [False, True], ids=['reference', 'fused'])
@pytest.mark.parametrize('k', [1, 3])
def test_loss_and_every_gradient_equal_the_cpus(fixed_noise, k, fused):
    # the CPU's reference against the GPU's reference or fused loss (the
    # fused one is the CUDA-graph path's evaluation loss)
    import cupy
    cpu, gpu = models()
    x = numpy.random.RandomState(1).rand(5, 20).astype(numpy.float32)
    losses = {}
    for name, model, xp in (('cpu', cpu, numpy), ('gpu', gpu, cupy)):
        fixed_noise(0)
        model.cleargrads()  # a Parameter's gradient starts as NaN
        loss = model.get_loss_func(k=k, fused=fused and name == 'gpu')(
            xp.asarray(x))
        loss.backward()
        losses[name] = float(loss.array)
    assert losses['gpu'] == pytest.approx(losses['cpu'], rel=1e-5)
    grads = dict(cpu.namedparams())
    for name, param in gpu.namedparams():
        assert isinstance(param.grad, cupy.ndarray)
        assert_close(param.grad, grads[name].grad, name=name)


def test_one_adam_step_equals_the_cpus(fixed_noise):
    import chainer
    import cupy
    cpu, gpu = models()
    x = numpy.random.RandomState(1).rand(5, 20).astype(numpy.float32)
    for model, xp in ((cpu, numpy), (gpu, cupy)):
        fixed_noise(0)
        optimizer = chainer.optimizers.Adam()
        optimizer.setup(model)
        optimizer.update(model.get_loss_func(), xp.asarray(x))
    params = dict(cpu.namedparams())
    for name, param in gpu.namedparams():
        assert_close(param.array, params[name].array, name=name)


@pytest.mark.numerics
def test_evaluation_estimates_equal_the_cpus(fixed_noise):
    import cupy
    cpu, gpu = models(n_in=784, n_latent=2, n_h=32)
    x = numpy.random.RandomState(2).rand(30, 784).astype(numpy.float32)
    results = []
    for model, data in ((cpu, x), (gpu, cupy.asarray(x))):
        fixed_noise(0)
        results.append(estimators.evaluate(model, data, k=4, iw_samples=50,
                                           iw_chunk=20, batchsize=16,
                                           progress=False))
    for key in ('neg_elbo', 'reconstr', 'kl', 'neg_log_likelihood'):
        assert results[1][key] == pytest.approx(results[0][key], rel=1e-5)


def train_small(out, mnist_dir, *extra):
    """A small run (784-64-64-3, the --test subset) on GPU 0."""
    return testutil.train_small(out, mnist_dir, '--gpu', '0', *extra,
                                n_hidden=64, n_latent=3)


@pytest.mark.numerics
def test_train_on_the_gpu_writes_a_model_the_cpu_evaluates_alike(
        tmp_path, mnist, mnist_dir, fixed_noise):
    import cupy
    assert train_small(tmp_path / 'run', mnist_dir, '-e', '1') == 0
    assert numpy.isfinite(
        read_log(tmp_path / 'run')[0]['validation/main/loss'])
    cpu = load_model(tmp_path / 'run' / 'model.npz')
    gpu = cpu.copy(mode='copy')
    gpu.to_device('@cupy:0')
    x = mnist[1].images[:200]
    losses = []
    for model, data in ((cpu, x), (gpu, cupy.asarray(x))):
        fixed_noise(0)
        losses.append(estimators.elbo(model, data, k=10)['loss'])
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


@pytest.mark.numerics
def test_a_resumed_gpu_run_equals_an_uninterrupted_one(
        tmp_path, mnist_dir, monkeypatch):
    train_small(tmp_path / 'straight', mnist_dir, '-e', '3')
    interrupt_at(monkeypatch, 25)  # in epoch 3: 10 iterations an epoch
    with pytest.raises(SystemExit, match='stopped by Ctrl-C'):
        train_small(tmp_path / 'resumed', mnist_dir, '-e', '3')
    monkeypatch.undo()
    assert not os.path.exists(tmp_path / 'resumed' / 'snapshot_epoch_3')
    train_small(tmp_path / 'resumed', mnist_dir, '-e', '3')
    a = load_model(tmp_path / 'straight' / 'model.npz')
    b = dict(load_model(tmp_path / 'resumed' / 'model.npz').namedparams())
    for name, param in a.namedparams():
        numpy.testing.assert_array_equal(param.array, b[name].array,
                                         err_msg=name)


# -- the CUDA-graph path (vae/kernels/cuda_graph.py) ---------------------------------

def nvmath_available():
    try:
        import nvmath.bindings.cublas  # NOQA: F401
        return True
    except ImportError:
        return False


needs_nvmath = pytest.mark.skipif(
    not nvmath_available(), reason='the graph path needs nvmath-python')


@needs_nvmath
def test_cublas_dot_equals_cupy_dot():
    import cupy
    from vae.kernels import cublas as cublas_lib
    stream = device_lib.stream(device_lib.get_device(0))
    dot = cublas_lib.CublasDot(cupy, stream)
    rng = numpy.random.RandomState(0)
    a = cupy.asarray(rng.randn(100, 784).astype(numpy.float32))
    w = cupy.asarray(rng.randn(500, 784).astype(numpy.float32))
    g = cupy.asarray(rng.randn(100, 500).astype(numpy.float32))
    with stream:
        for left, right in ((a, w.T), (g.T, a), (g, w)):
            got = dot(left, right)
            stream.synchronize()
            assert_close(got, device_lib.to_cpu(cupy.dot(left, right)),
                         rtol=1e-5)


@pytest.mark.numerics
@needs_nvmath
def test_graph_replays_equal_eager_steps(mnist):
    import chainer
    import cupy
    from vae.kernels import cuda_graph
    from vae.kernels import cublas as cublas_lib
    device = device_lib.get_device(0)
    assert device_lib.use_stream_ordered_memory(device) is None
    x = cupy.asarray(mnist[0].images[:2000])
    eps = cupy.asarray(numpy.random.RandomState(0).standard_normal(
        (20, 100, 20)).astype(numpy.float32))
    stream = device_lib.stream(device)
    steps = []
    for captured in (False, True):
        numpy.random.seed(0)
        model = VAE(784, 20, 500, 'softplus')
        model.to_device(device)
        optimizer = chainer.optimizers.Adam()
        optimizer.setup(model)
        with stream:
            step = cuda_graph.FusedStep(model, optimizer, 100, 1, 1.0,
                                        cublas_lib.CublasDot(cupy, stream))
            # as GraphUpdater builds it: the state saved before the
            # warm-up, put back after the capture
            run = cuda_graph.warm_up_and_capture(device, stream, step,
                                                 captured)
            assert float(step.t) == 0
            for i in range(20):
                step.x[...] = x[i * 100:(i + 1) * 100]
                step.eps[...] = eps[i]
                run()
            stream.synchronize()
        steps.append(step)
    numpy.testing.assert_array_equal(device_lib.to_cpu(steps[0].P),
                                     device_lib.to_cpu(steps[1].P))
    assert float(steps[1].t) == 20


@pytest.mark.numerics
@needs_nvmath
def test_the_graph_path_trains_as_the_plain_path(tmp_path, mnist_dir):
    logs = []
    for name, extra in (('plain', []), ('graph', ['--cuda-graph'])):
        out = tmp_path / name
        assert train_small(out, mnist_dir, '-e', '30', *extra) == 0
        logs.append(read_log(out))  # 300 iterations
    # the graph draws its own order and noise (per epoch, on the device):
    # the two runs are two samples of the same training, close, not equal
    # (tests/kernels/test_cuda_graph.py checks the graph's draws exactly)
    for key in ('main/loss', 'validation/main/loss'):
        assert logs[1][-1][key] == pytest.approx(logs[0][-1][key],
                                                 rel=0.02), key


@pytest.mark.numerics
@needs_nvmath
def test_a_resumed_graph_run_equals_an_uninterrupted_one(
        tmp_path, mnist_dir, monkeypatch):
    from vae.train import graph_updater
    train_small(tmp_path / 'straight', mnist_dir, '-e', '3', '--cuda-graph')
    interrupt_at(monkeypatch, 25, graph_updater.GraphUpdater)
    with pytest.raises(SystemExit, match='stopped by Ctrl-C'):
        train_small(tmp_path / 'resumed', mnist_dir, '-e', '3',
                    '--cuda-graph')
    monkeypatch.undo()
    train_small(tmp_path / 'resumed', mnist_dir, '-e', '3', '--cuda-graph')
    a = load_model(tmp_path / 'straight' / 'model.npz')
    b = dict(load_model(tmp_path / 'resumed' / 'model.npz').namedparams())
    for name, param in a.namedparams():
        numpy.testing.assert_array_equal(param.array, b[name].array,
                                         err_msg=name)


@needs_nvmath
def test_the_graphs_guard_keeps_the_last_good_outputs(
        tmp_path, mnist_dir, monkeypatch):
    out = tmp_path / 'run'
    train_small(out, mnist_dir, '-e', '1', '--cuda-graph')
    good = (out / 'model.npz').read_bytes()
    poison_graph_at(monkeypatch, 15)  # NaN pixels, a NaN loss
    with pytest.raises(SystemExit, match=r'non-finite loss at iteration 15; '
                       r'the CUDA graph applied neither'):
        train_small(out, mnist_dir, '-e', '3', '--cuda-graph')
    assert (out / 'model.npz').read_bytes() == good
    assert not (out / 'snapshot_epoch_2').exists()
