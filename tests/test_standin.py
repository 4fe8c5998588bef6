"""The stand-in GPU of tests/standin.py captures as CUDA does: each thing a
CUDA graph's capture cannot record is refused there, so that the CPU tests
of the graph path (tests/kernels/test_cuda_graph.py) fail where a GPU would."""
import numpy
import pytest

from standin import (CaptureError, fake_nvmath, replaying_capture,
                     stand_in_gpu)
from vae.kernels import cublas as cublas_lib
from vae import device as device_lib


@pytest.fixture
def gpu(monkeypatch):
    with stand_in_gpu(monkeypatch) as device:
        monkeypatch.setattr(device_lib, 'capture',
                            replaying_capture(device_lib.capture))
        yield device


def capture(gpu, func, pool=True):
    """Capture ``func`` on a new stream of ``gpu``, as vae.kernels.cuda_graph does
    (the stream-ordered pool in use where ``pool``)."""
    if pool:
        assert device_lib.use_stream_ordered_memory(gpu) is None
    stream = device_lib.stream(gpu)
    return device_lib.capture(gpu, stream, func)


def on_device(gpu, *shape):
    return gpu.send(numpy.ones(shape, dtype=numpy.float32))


def test_device_work_is_captured_and_replayed(gpu):
    a, b = on_device(gpu, 3), on_device(gpu, 3)

    def step():
        a[...] += b * 2  # a kernel, a temporary from the pool, a kernel

    replay = capture(gpu, step)
    launches = gpu.xp.launches
    replay()
    replay()
    assert gpu.xp.launches - launches == 4
    # the stand-in's capture computes too: 1 + 3 * 2
    numpy.testing.assert_array_equal(a, [7, 7, 7])


@pytest.mark.parametrize('read', [
    float, int, bool, lambda a: a.item(), lambda a: a.tolist(),
    device_lib.to_cpu], ids=['float', 'int', 'bool', 'item', 'tolist',
                             'to_cpu'])
def test_a_host_read_of_a_device_value_is_refused(gpu, read):
    a = on_device(gpu)  # shape ()
    with pytest.raises(CaptureError, match='reading a device value'):
        capture(gpu, lambda: read(a))
    read(a)  # outside a capture, as usual


def test_cupys_own_cublas_is_refused(gpu):
    a = on_device(gpu, 2, 2)
    for product in (lambda: gpu.xp.dot(a, a), lambda: a @ a,
                    lambda: a.dot(a)):
        with pytest.raises(NotImplementedError, match='cuBLAS API during '
                           'stream capture'):
            capture(gpu, product)


def test_curand_is_refused(gpu):
    with pytest.raises(CaptureError, match='cuRAND'):
        capture(gpu, lambda: device_lib.standard_normal(
            gpu.xp, (2,), numpy.float32))
    with pytest.raises(CaptureError, match='cuRAND'):
        capture(gpu, lambda: device_lib.reseed(gpu, 3))


def test_allocating_outside_the_stream_ordered_pool_is_refused(gpu):
    a = on_device(gpu, 3)
    capture(gpu, lambda: a.__iadd__(1), pool=False)  # in place: no memory
    with pytest.raises(CaptureError, match='MemoryAsyncPool'):
        capture(gpu, lambda: a + 1, pool=False)


def test_work_on_the_legacy_stream_is_refused(gpu):
    a = on_device(gpu, 3)
    assert device_lib.use_stream_ordered_memory(gpu) is None
    stream = device_lib.stream(gpu)
    stream.begin_capture()  # without `with stream`: the legacy stream
    try:
        with pytest.raises(CaptureError, match='legacy stream'):
            a + 1
    finally:
        stream.end_capture()
    with pytest.raises(CaptureError, match='legacy stream cannot be'):
        gpu.xp.cuda.Stream.null.begin_capture()


def test_cublas_on_a_handle_of_another_stream_is_refused(gpu, monkeypatch):
    with fake_nvmath(monkeypatch):
        other = device_lib.stream(gpu)
        dot = cublas_lib.CublasDot(gpu.xp, other)
        a = numpy.ones((2, 2), numpy.float32)
        out = numpy.empty((2, 2), numpy.float32)
        with pytest.raises(CaptureError, match='another stream'):
            capture(gpu, lambda: dot(a, a, out=out))


def softplus_kernel(gpu):
    from vae.kernels import elementwise as kernels
    spec = kernels.KERNELS['vae_softplus']
    return gpu.xp.ElementwiseKernel(spec.in_params, spec.out_params,
                                    spec.body, spec.name)


def test_an_elementwise_kernel_is_one_launch_running_its_reference(gpu):
    kernel = softplus_kernel(gpu)
    a = gpu.send(numpy.array([-50, -1, 0, 1, 50], numpy.float32))
    h = gpu.xp.zeros(5, numpy.float32)
    replay = capture(gpu, lambda: kernel(a, h))
    launches = gpu.xp.launches
    replay()
    assert gpu.xp.launches - launches == 1
    numpy.testing.assert_allclose(h, numpy.logaddexp(0, a), rtol=1e-6)


def test_the_stand_in_runs_only_the_projects_kernels_as_written(gpu):
    from vae.kernels import elementwise as kernels
    spec = kernels.KERNELS['vae_softplus']
    with pytest.raises(ValueError, match='as written there'):
        gpu.xp.ElementwiseKernel(spec.in_params, spec.out_params,
                                 'h = a;', spec.name)
    with pytest.raises(ValueError, match='as written there'):
        gpu.xp.ElementwiseKernel('T a', 'T h', 'h = a;', 'other')


def test_an_elementwise_kernel_checks_its_arguments_as_cupy(gpu):
    kernel = softplus_kernel(gpu)
    a, h = on_device(gpu, 4), on_device(gpu, 4)
    with pytest.raises(TypeError, match='NumPy array'):
        kernel(numpy.ones(4, numpy.float32), h)
    with pytest.raises(TypeError, match='type T is both'):
        kernel(a, gpu.xp.zeros(4, numpy.float64))
    with pytest.raises(ValueError, match='broadcast shape'):
        kernel(on_device(gpu, 2, 4), h)
    with pytest.raises(TypeError, match='every input and output'):
        kernel(a)


def test_an_input_overlapping_an_output_is_copied_as_cupy_does(gpu):
    # the same array in and out is updated in place; another view of its
    # memory is copied first: an allocation, refused outside the pool
    from vae.kernels import elementwise as kernels
    spec = kernels.KERNELS['vae_softplus_grad']
    kernel = gpu.xp.ElementwiseKernel(spec.in_params, spec.out_params,
                                      spec.body, spec.name)
    a, h, g = on_device(gpu, 4), on_device(gpu, 4), on_device(gpu, 4)
    capture(gpu, lambda: kernel(a, h, g, g), pool=False)
    with pytest.raises(CaptureError, match='MemoryAsyncPool'):
        capture(gpu, lambda: kernel(a, h, g[:], g), pool=False)
    with pytest.raises(CaptureError, match='MemoryAsyncPool'):
        capture(gpu, lambda: gpu.xp.add(g[:], 1, out=g), pool=False)


def test_array_creation_allocates_on_the_device(gpu):
    for create in (lambda: gpu.xp.zeros(3), lambda: gpu.xp.asarray([1.0]),
                   lambda: gpu.xp.full((), 2)):
        assert isinstance(create(), type(on_device(gpu)))
        with pytest.raises(CaptureError, match='MemoryAsyncPool'):
            capture(gpu, create, pool=False)
