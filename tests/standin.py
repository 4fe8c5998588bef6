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

A stream captures as CUDA's does (:meth:`_CudaStream.begin_capture`): while
it captures, and while its graph replays, the stand-in refuses what CUDA
and CuPy refuse there, with their words:

* a host read of a device value (``float``, ``int``, ``bool``, ``item``,
  ``tolist``, ``asnumpy``, moving it to the CPU): a graph runs no Python;
* CuPy's own cuBLAS (``dot``, ``matmul``, ``@``) and cuRAND (``random``);
* an allocation where CuPy's allocator is not the stream-ordered pool
  (``cuda.MemoryAsyncPool``), and any work, an allocation included, on
  another stream than the capturing one (the legacy default stream, where
  no ``with stream`` is active); capturing the legacy stream itself.

It counts the kernels launched on the device (:attr:`StandInCupy.launches`:
each NumPy ufunc call or reduction on a device array, each launch of an
``ElementwiseKernel``, each cuBLAS ``sgemm`` of :class:`FakeCublas`) and the
allocations made while capturing or replaying
(:attr:`StandInCupy.capture_allocations`, the copies CuPy makes of an input
that overlaps an output included), so that a test can pin what a step
launches and that it allocates nothing. ``ElementwiseKernel`` accepts the
kernels of vae/kernels/elementwise.py and runs each one's NumPy reference (or, with
``compiled_kernels``, its C body compiled by the C compiler).
Capture rules and counts are kept per process, across stand-in devices,
as a GPU's are per context.
"""
import contextlib
import types

import chainer
import numpy

PHILOX = 161  # the value of CURAND_RNG_PSEUDO_PHILOX4_32_10 in cuRAND


class CaptureError(RuntimeError):
    """What CUDA or CuPy raises for work a stream capture cannot record."""


class _Capture(object):
    """The stream capturing or replaying now (``None`` when none), the
    kernel launches counted and the allocations made while a stream
    captured or a graph replayed."""
    stream = None
    launches = 0
    allocations = 0


def _refuse_in_capture(what):
    if _Capture.stream is not None:
        raise CaptureError('%s during stream capture is not permitted (a CUDA '
                           'graph records device work only)' % what)


def _check_capture_work(what):
    """Device work while capturing: on the capturing stream only."""
    stream = _Capture.stream
    if stream is not None and stream._cupy.current_stream() is not stream:
        raise CaptureError(
            'cudaErrorStreamCaptureImplicit: %s on the legacy stream while '
            'a stream captures' % what)


def _check_capture_allocation():
    if _Capture.stream is not None:
        _Capture.allocations += 1
        _check_capture_work('an allocation')
        if not _Capture.stream._cupy.allocates_stream_ordered():
            raise CaptureError(
                'cudaErrorStreamCaptureUnsupported: operation not permitted '
                'when stream is capturing (cudaMalloc: use '
                'cupy.cuda.MemoryAsyncPool)')


class DeviceArray(numpy.ndarray):
    """An array that lives on the stand-in GPU."""

    def __array_finalize__(self, obj):
        if self.base is None:  # new memory (copy, astype, ...)
            _check_capture_allocation()

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        _check_capture_work('a kernel')
        _Capture.launches += 1
        if 'out' not in kwargs:
            _check_capture_allocation()  # the result's
        else:
            _copy_overlapping_inputs(inputs, kwargs['out'])

        def plain(a):
            return a.view(numpy.ndarray) if isinstance(a, DeviceArray) else a
        if 'out' in kwargs:
            kwargs['out'] = tuple(plain(o) for o in kwargs['out'])
        result = getattr(ufunc, method)(*map(plain, inputs), **kwargs)
        if 'out' in kwargs:
            return result
        if isinstance(result, tuple):
            return tuple(r.view(DeviceArray) if isinstance(r, numpy.ndarray)
                         else r for r in result)
        return (result.view(DeviceArray)
                if isinstance(result, numpy.ndarray) else result)

    def _read(self, name, *args):
        _refuse_in_capture('reading a device value on the host (%s)' % name)
        return getattr(numpy.ndarray, name)(self, *args)

    def __float__(self):
        return self._read('__float__')

    def __int__(self):
        return self._read('__int__')

    def __bool__(self):
        return self._read('__bool__')

    def __index__(self):
        return self._read('__index__')

    def item(self, *args):
        return self._read('item', *args)

    def tolist(self):
        return self._read('tolist')

    def dot(self, *args, **kwargs):
        _refuse_cublas()
        return numpy.ndarray.dot(self, *args, **kwargs)

    def __matmul__(self, other):
        _refuse_cublas()
        return numpy.ndarray.__matmul__(self, other)


def _copy_overlapping_inputs(inputs, outputs):
    """CuPy copies an input that shares memory with an output unless it
    is that very array (``_copy_in_args_if_needed``): an allocation."""
    for a in inputs:
        if isinstance(a, numpy.ndarray) and any(
                a is not out and isinstance(out, numpy.ndarray)
                and numpy.may_share_memory(a, out) for out in outputs):
            _check_capture_allocation()


class _ElementwiseKernel(object):
    """``cupy.ElementwiseKernel`` for the kernels of vae/kernels/elementwise.py (the
    stand-in refuses any other text): a launch checks the arguments as
    CuPy does (device arrays, the declared types, outputs of the broadcast
    shape), counts one kernel and runs the kernel's NumPy reference, or its
    C body compiled by the C compiler where the array module's
    ``compiled_kernels`` is set (tests/ckernels.py)."""

    def __init__(self, cupy, in_params, out_params, operation, name):
        from vae.kernels import elementwise as kernels
        spec = kernels.KERNELS.get(name)
        if spec is None or (spec.in_params, spec.out_params, spec.body) != \
                (in_params, out_params, operation):
            raise ValueError('the stand-in runs the kernels of vae/kernels/elementwise.py '
                             'as written there, not %r' % name)
        self._cupy, self._spec = cupy, spec
        self._ins = kernels.parse_params(in_params)
        self._outs = kernels.parse_params(out_params)
        self.name = name

    def _check(self, args):
        params = self._ins + self._outs
        t_dtype, shapes = None, []
        for (kind, name, raw), arg in zip(params, args):
            if isinstance(arg, numpy.ndarray) and \
                    not isinstance(arg, DeviceArray):
                raise TypeError('%s: argument %s is a NumPy array, not a '
                                'device array' % (self.name, name))
            is_array = isinstance(arg, DeviceArray)
            if not is_array and (raw or (kind, name, raw) in self._outs):
                raise TypeError('%s: %s must be a device array'
                                % (self.name, name))
            dtype = numpy.asarray(arg).dtype if is_array or isinstance(
                arg, numpy.generic) else None
            if kind == 'T' and dtype is not None:
                if t_dtype is not None and dtype != t_dtype:
                    raise TypeError('%s: type T is both %s and %s'
                                    % (self.name, t_dtype, dtype))
                t_dtype = dtype
            elif kind != 'T' and dtype is not None and \
                    dtype != numpy.dtype(kind):
                raise TypeError('%s: %s is %s, declared %s'
                                % (self.name, name, dtype, kind))
            if not raw:
                shapes.append(numpy.shape(arg))
        shape = numpy.broadcast_shapes(*shapes)
        for (_, name, raw), out in zip(self._outs, args[len(self._ins):]):
            if not raw and out.shape != shape:
                raise ValueError('%s: output %s has the shape %s, not the '
                                 'broadcast shape %s'
                                 % (self.name, name, out.shape, shape))

    def __call__(self, *args):
        if len(args) != len(self._ins) + len(self._outs):
            raise TypeError('%s: the stand-in needs every input and output '
                            '(%d arguments), got %d'
                            % (self.name, len(self._ins) + len(self._outs),
                               len(args)))
        self._check(args)
        _check_capture_work('a kernel')
        _Capture.launches += 1
        _copy_overlapping_inputs(args[:len(self._ins)],
                                 args[len(self._ins):])
        plain = [a.view(numpy.ndarray) if isinstance(a, DeviceArray) else a
                 for a in args]
        if self._cupy.compiled_kernels:
            import ckernels
            ckernels.compile_kernel(self._spec.in_params,
                                    self._spec.out_params, self._spec.body,
                                    self.name)(*plain)
        else:
            self._spec.reference(*plain)


def _refuse_cublas():
    if _Capture.stream is not None:  # CuPy's words
        raise NotImplementedError('calling cuBLAS API during stream capture '
                                  'is currently unsupported')


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
            _refuse_in_capture('cuRAND (cupy.random)')
            return self._rs.standard_normal(size).astype(dtype).view(
                DeviceArray)

        def permutation(self, num):
            _refuse_in_capture('cuRAND (cupy.random)')
            return self._rs.permutation(num).astype(numpy.int64).view(
                DeviceArray)

    def seed(self, seed=None):
        _refuse_in_capture('cuRAND (cupy.random)')
        self.seeds.append(seed)
        self.seeded_devices.append(self._cupy.current_device())
        self.state.seed(seed)

    def set_random_state(self, state):
        self.states[self._cupy.current_device()] = state

    def get_random_state(self):
        return self.state

    def standard_normal(self, size=None, dtype=float):
        return self.state.standard_normal(size, dtype)

    def permutation(self, num):
        return self.state.permutation(num)


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


class _AsyncPool(_MemoryPool):
    """``cupy.cuda.MemoryAsyncPool``: CUDA's stream-ordered allocator, the
    one a capture may allocate from."""


class _CudaStream(object):
    """A stream: a context that makes it current, and a CUDA graph capture
    that only records that it happened (vae.device.capture is tested with
    a recording stream of its own)."""

    _count = 0
    #: the function the next capture records (standin.replaying_capture)
    captured_call = None

    def __init__(self, cupy, non_blocking=False):
        _CudaStream._count += 1
        self.ptr = 0x5000 + _CudaStream._count
        self.non_blocking = non_blocking
        self._cupy = cupy
        self.device_id = cupy.current_device()
        self.synchronized = 0

    def begin_capture(self):
        if self is self._cupy.null_stream:
            raise CaptureError('cudaErrorStreamCaptureUnsupported: the '
                               'legacy stream cannot be captured')
        if _Capture.stream is not None:
            raise CaptureError('a stream is capturing already')
        _Capture.stream = self

    def is_capturing(self):
        return _Capture.stream is self

    def end_capture(self):
        if _Capture.stream is not self:
            raise CaptureError('cudaErrorStreamCaptureInvalidated: this '
                               'stream was not capturing')
        _Capture.stream = None
        return _Graph(self._cupy, self, self.captured_call)

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


class _Graph(object):
    """A captured graph. A real one replays the recorded kernels without
    Python; the stand-in calls the captured function again on the capturing
    stream, under the capture's rules, so that a replay reads nothing from
    the host either. ``launch`` is what the project calls."""

    def __init__(self, cupy, stream, call):
        self._cupy, self._stream, self._call = cupy, stream, call
        self.launched = 0

    def launch(self, stream=None):
        if self._call is None:
            raise CaptureError('the stand-in replays only captures made '
                               'through standin.replaying_capture')
        self.launched += 1
        if self._cupy.kernels_as_noops:  # the host's side of a launch only
            _Capture.launches += 1
            return
        with self._stream:
            _Capture.stream = self._stream
            try:
                self._call()
            finally:
                _Capture.stream = None


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
        self.null_stream = _CudaStream(self)  # the legacy default stream
        #: run the kernels' C bodies compiled (tests/ckernels.py), not
        #: their NumPy references
        self.compiled_kernels = False
        #: a graph's replay computes nothing and counts one launch (what
        #: the host does to replay a graph: scripts/benchmark.py
        #: --host-cost)
        self.kernels_as_noops = False
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

        def new_stream(non_blocking=False):
            return _CudaStream(self, non_blocking)
        new_stream.null = self.null_stream

        self.cuda = types.SimpleNamespace(
            Device=Device,
            Stream=new_stream,
            MemoryAsyncPool=_AsyncPool,
            set_allocator=set_allocator,
            get_current_stream=lambda: self.stream,
            runtime=types.SimpleNamespace(
                getDeviceCount=lambda: self.device_count,
                getDeviceProperties=lambda index: {
                    'name': b'Stand-in GPU %d' % index}),
            curand=types.SimpleNamespace(
                CURAND_RNG_PSEUDO_PHILOX4_32_10=PHILOX))

    @property
    def launches(self):
        """Kernels launched on any stand-in device so far."""
        return _Capture.launches

    @property
    def capture_allocations(self):
        """Allocations made so far while a stream captured or a graph
        replayed (each would be a node of the graph)."""
        return _Capture.allocations

    def ElementwiseKernel(self, in_params, out_params, operation,
                          name='kernel'):
        return _ElementwiseKernel(self, in_params, out_params, operation,
                                  name)

    def current_stream(self):
        """The stream made current (``with stream``), else the legacy
        one."""
        return self.streams[-1] if self.streams else self.null_stream

    def allocates_stream_ordered(self):
        """Whether ``set_allocator`` installed a stream-ordered pool's
        ``malloc``."""
        return isinstance(getattr(self.allocator, '__self__', None),
                          _AsyncPool)

    def dot(self, *args, **kwargs):
        _refuse_cublas()
        return numpy.dot(*args, **kwargs)

    def asarray(self, a, dtype=None):
        """A device array (``a`` itself where it is one of ``dtype``)."""
        if isinstance(a, DeviceArray) and (dtype is None
                                           or a.dtype == dtype):
            return a
        _check_capture_allocation()
        return numpy.array(a, dtype=dtype).view(DeviceArray)

    array = asarray

    def matmul(self, *args, **kwargs):
        _refuse_cublas()
        return numpy.matmul(*args, **kwargs)

    def current_device(self):
        """The id of the current device (0 where none was made current)."""
        return self.current[-1] if self.current else 0

    def get_default_memory_pool(self):
        return self.pool

    def asnumpy(self, array):
        _refuse_in_capture('reading a device value on the host (asnumpy)')
        return numpy.asarray(array).view(numpy.ndarray)

    def __getattr__(self, name):
        if name in _CREATORS:  # memory on the device
            return _on_device(getattr(numpy, name))
        return getattr(numpy, name)


_CREATORS = ('zeros', 'ones', 'empty', 'full', 'zeros_like', 'ones_like',
             'empty_like', 'full_like', 'arange')


def _on_device(create):
    def created(*args, **kwargs):
        _check_capture_allocation()
        return create(*args, **kwargs).view(DeviceArray)
    return created


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
            _refuse_in_capture('reading a device value on the host (to_cpu)')
            return array.view(numpy.ndarray).copy()
        return original(array)

    monkeypatch.setattr(_cpu, '_array_to_cpu', to_cpu)
    monkeypatch.setattr(AdamRule, 'update_core_gpu', AdamRule.update_core_cpu)
    yield StandInGpuDevice(index)


class FakeCublas(types.ModuleType):
    """``nvmath.bindings.cublas`` as far as vae.kernels.cuda_graph uses it, with
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
        capturing = _Capture.stream
        if capturing is not None and \
                self.handles[handle]['stream'] != capturing.ptr:
            raise CaptureError('cudaErrorStreamCaptureIsolation: sgemm on a '
                               'handle bound to another stream')
        self.sgemm_calls += 1
        _Capture.launches += 1
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
    vae.kernels.cublas take NumPy arrays' addresses as device pointers."""
    import sys
    from vae.kernels import cublas as cublas_lib
    cublas = FakeCublas()
    package = types.ModuleType('nvmath')
    package.bindings = types.ModuleType('nvmath.bindings')
    package.bindings.cublas = cublas
    monkeypatch.setitem(sys.modules, 'nvmath', package)
    monkeypatch.setitem(sys.modules, 'nvmath.bindings', package.bindings)
    monkeypatch.setitem(sys.modules, 'nvmath.bindings.cublas', cublas)
    monkeypatch.setattr(cublas_lib, '_pointer', lambda a: a.ctypes.data)
    yield cublas


def replaying_capture(capture):
    """``vae.device.capture`` for the stand-in: ``capture`` itself (the
    stream's capture, with the stand-in's rules while ``func`` runs), told
    which function to call again at each replay."""
    def replayed(device, stream, func):
        stream.captured_call = func
        return capture(device, stream, func)
    return replayed
