"""A stand-in for a GPU and CuPy, so that the CPU tests run the project's
GPU-only lines (``vae/device.py`` and its callers).

It copies what the project's code depends on, where real CuPy and Chainer's
``GpuDevice`` differ from the CPU:

* the device is not a context manager (``with device:`` raises, as for
  every ``chainer.backend.Device``); ``chainer.using_device`` makes it
  current, which the stand-in records;
* the array module has a random generator of its own for each device,
  used by whichever device is current (device 0 where none was made
  current), which NumPy's seed does not touch and whose state no snapshot
  holds; ``random.RandomState`` takes CuPy's ``method`` and
  ``set_random_state`` installs one for the current device;
* a stream belongs to the device current at its creation, and ``with
  stream`` refuses to start while another device is current, with CuPy
  14's message;
* arrays must be moved: ``send`` turns them into :class:`DeviceArray`, and
  only ``chainer.backend.CpuDevice().send`` (as for a CuPy array's
  ``get()``) turns them back into plain NumPy arrays;
* the array module has CuPy's ``cuda`` (streams, devices, the runtime's
  device properties, cuRAND's constants) and a memory pool.

The arithmetic is NumPy's, so results can be compared with the CPU's
exactly: Chainer's functions see NumPy arrays and run their CPU code, and
Adam's update, which Chainer picks by the parameter's device, runs its CPU
code too (Chainer's GPU kernels are Chainer's, not this project's). Use
:func:`stand_in_gpu` (a fixture-friendly context manager).
"""
import contextlib
import types

import chainer
import numpy

PHILOX = 161  # the value of CURAND_RNG_PSEUDO_PHILOX4_32_10 in cuRAND


class DeviceArray(numpy.ndarray):
    """An array that lives on the stand-in GPU."""


class _Random(object):
    """``cupy.random``: a generator per device, apart from NumPy's; each
    call uses the current device's."""

    def __init__(self, cupy):
        self._cupy = cupy
        self.states = {}  # device id -> RandomState
        self.seeds = []  # every seed given, in order
        self.seeded_devices = []  # the device of each seed

    @property
    def state(self):
        device = self._cupy.current_device()
        if device not in self.states:
            self.states[device] = self.RandomState(numpy.uint64(device))
        return self.states[device]

    class RandomState(object):
        def __init__(self, seed=None, method=None):
            self.method = method
            self.seed(seed)

        def seed(self, seed=None):
            if seed is not None:  # as CuPy does (which refuses a Python
                # int on NumPy 2, whose casting is no longer by value)
                seed = int(numpy.asarray(seed).astype(numpy.uint64,
                                                      casting='safe'))
            self._rs = numpy.random.RandomState(
                None if seed is None else seed % 2 ** 32)

        def standard_normal(self, size=None, dtype=float):
            return self._rs.standard_normal(size).astype(dtype).view(
                DeviceArray)

    def seed(self, seed=None):
        self.seeds.append(seed)
        self.seeded_devices.append(self._cupy.current_device())
        self.state.seed(seed)

    def set_random_state(self, state):
        self.states[self._cupy.current_device()] = state

    def get_random_state(self):
        return self.state

    def standard_normal(self, size=None, dtype=float):
        return self.state.standard_normal(size, dtype)


class _Stream(object):
    def __init__(self):
        self.synchronized = 0

    def synchronize(self):
        self.synchronized += 1


class _MemoryPool(object):
    def total_bytes(self):
        return 12345678

    def used_bytes(self):
        return 1234567

    def free_all_blocks(self):
        pass

    def malloc(self, size):
        raise NotImplementedError('the stand-in allocates with NumPy')


class _CudaStream(object):
    """A stream: a context that makes it current, and a CUDA graph capture
    that only records that it happened (vae.device.capture is tested with
    a recording stream of its own)."""

    _count = 0

    def __init__(self, cupy, non_blocking=False):
        _CudaStream._count += 1
        self.ptr = 0x5000 + _CudaStream._count
        self.non_blocking = non_blocking
        self._cupy = cupy
        self.device_id = cupy.current_device()
        self.synchronized = 0

    def __enter__(self):
        current = self._cupy.current_device()
        if current != self.device_id:  # CuPy 14's check, and its words
            raise RuntimeError(
                'the device that the stream is created on (%d) does not '
                'match with the current device (%d)'
                % (self.device_id, current))
        self._cupy.streams.append(self)
        return self

    def __exit__(self, *exc):
        self._cupy.streams.pop()

    def synchronize(self):
        self.synchronized += 1


class StandInCupy(types.ModuleType):
    """The stand-in array module: NumPy's functions plus CuPy's extras."""

    def __init__(self):
        super(StandInCupy, self).__init__('standin_cupy')
        self.random = _Random(self)
        self.stream = _Stream()
        self.current = []  # the device made current, innermost last
        self.streams = []  # the streams made current, innermost last
        self.pool = _MemoryPool()
        self.allocator = None  # what set_allocator installed
        self.device_count = 1
        cupy = self

        class Device(object):
            def __init__(self, index=None):
                self.id = 0 if index is None else index

            def __enter__(self):
                cupy.current.append(self.id)
                return self

            def __exit__(self, *exc):
                cupy.current.pop()

            def use(self):
                cupy.current[:] = [self.id]

        def set_allocator(malloc):
            self.allocator = malloc

        self.cuda = types.SimpleNamespace(
            Device=Device,
            Stream=lambda non_blocking=False: _CudaStream(self, non_blocking),
            MemoryAsyncPool=_MemoryPool,
            set_allocator=set_allocator,
            get_current_stream=lambda: self.stream,
            runtime=types.SimpleNamespace(
                getDeviceCount=lambda: self.device_count,
                getDeviceProperties=lambda index: {
                    'name': b'Stand-in GPU %d' % index}),
            curand=types.SimpleNamespace(
                CURAND_RNG_PSEUDO_PHILOX4_32_10=PHILOX))

    def current_device(self):
        """The id of the current device (0 where none was made current)."""
        return self.current[-1] if self.current else 0

    def get_default_memory_pool(self):
        return self.pool

    def asnumpy(self, array):
        return numpy.asarray(array).view(numpy.ndarray)

    def __getattr__(self, name):
        return getattr(numpy, name)


class StandInGpuDevice(chainer.backend.Device):
    """Chainer's ``GpuDevice`` as far as the project uses it."""

    def __init__(self, index=0):
        self.index = index
        self.cupy = StandInCupy()
        self.cupy.device_count = index + 1
        self.sent = 0  # arrays moved here

    @property
    def xp(self):
        return self.cupy

    @property
    def name(self):
        return '@standin:%d' % self.index

    @property
    def supported_array_types(self):
        return (DeviceArray,)

    def __eq__(self, other):
        return isinstance(other, StandInGpuDevice) and \
            other.index == self.index

    def __hash__(self):
        return hash(self.name)

    def create_context(self):
        return self.cupy.cuda.Device(self.index)

    def send_array(self, array):
        self.sent += 1
        return numpy.array(array, copy=True).view(DeviceArray)

    def use(self):
        self.cupy.cuda.Device(self.index).use()

    def is_array_supported(self, array):
        return isinstance(array, DeviceArray)


@contextlib.contextmanager
def stand_in_gpu(monkeypatch, index=0):
    """A :class:`StandInGpuDevice` (GPU ``index``), with
    ``CpuDevice().send`` taught to bring its arrays back as plain NumPy
    arrays."""
    from chainer.backends import _cpu
    from chainer.optimizers.adam import AdamRule
    original = _cpu._array_to_cpu

    def to_cpu(array):
        if isinstance(array, DeviceArray):
            return array.view(numpy.ndarray).copy()
        return original(array)

    monkeypatch.setattr(_cpu, '_array_to_cpu', to_cpu)
    monkeypatch.setattr(AdamRule, 'update_core_gpu', AdamRule.update_core_cpu)
    yield StandInGpuDevice(index)


class FakeCublas(types.ModuleType):
    """``nvmath.bindings.cublas`` as far as vae.cuda_graph uses it, with
    cuBLAS's column-major ``sgemm`` computed by NumPy on the memory the
    pointers address (which must be NumPy arrays' ``ctypes.data``)."""

    def __init__(self):
        super(FakeCublas, self).__init__('nvmath.bindings.cublas')
        self.handles = {}  # handle -> {'stream': ptr, 'workspace': bytes}
        self.sgemm_calls = 0
        self.created = 0
        #: what ``create`` raises, as a broken install does (for example
        #: ``OSError`` where libcublas cannot be loaded)
        self.create_error = None

    def create(self):
        if self.create_error is not None:
            raise self.create_error
        self.created += 1
        handle = 0x7000 + self.created
        self.handles[handle] = {}
        return handle

    def set_stream(self, handle, stream_ptr):
        self.handles[handle]['stream'] = stream_ptr

    def set_workspace(self, handle, ptr, nbytes):
        self.handles[handle]['workspace'] = nbytes

    def destroy(self, handle):
        del self.handles[handle]

    @staticmethod
    def _matrix(ptr, rows, cols, ld):
        """The column-major rows x cols matrix at ``ptr`` (a view)."""
        import ctypes
        memory = numpy.ctypeslib.as_array(
            (ctypes.c_float * (ld * cols)).from_address(ptr))
        return memory.reshape(cols, ld).T[:rows, :cols]

    @staticmethod
    def _scalar(ptr):
        import ctypes
        return numpy.float32(ctypes.c_float.from_address(ptr).value)

    def sgemm(self, handle, transa, transb, m, n, k, alpha, a, lda, b, ldb,
              beta, c, ldc):
        assert 'stream' in self.handles[handle]
        self.sgemm_calls += 1
        op_a = self._matrix(a, *((m, k) if transa == 0 else (k, m)), lda)
        op_b = self._matrix(b, *((k, n) if transb == 0 else (n, k)), ldb)
        op_a = op_a if transa == 0 else op_a.T  # (m, k)
        op_b = op_b if transb == 0 else op_b.T  # (k, n)
        out = self._matrix(c, m, n, ldc)
        product = self._scalar(alpha) * numpy.dot(op_a, op_b)
        beta = self._scalar(beta)
        out[...] = product if beta == 0 else product + beta * out


@contextlib.contextmanager
def fake_nvmath(monkeypatch):
    """Install :class:`FakeCublas` as ``nvmath.bindings.cublas`` and let
    vae.cuda_graph take NumPy arrays' addresses as device pointers."""
    import sys
    from vae import cuda_graph
    cublas = FakeCublas()
    package = types.ModuleType('nvmath')
    package.bindings = types.ModuleType('nvmath.bindings')
    package.bindings.cublas = cublas
    monkeypatch.setitem(sys.modules, 'nvmath', package)
    monkeypatch.setitem(sys.modules, 'nvmath.bindings', package.bindings)
    monkeypatch.setitem(sys.modules, 'nvmath.bindings.cublas', cublas)
    monkeypatch.setattr(cuda_graph, '_pointer', lambda a: a.ctypes.data)
    yield cublas
