"""A stand-in for a GPU and CuPy, so that the CPU tests run the project's
GPU-only lines (``vae/device.py`` and its callers).

It copies what the project's code depends on, where real CuPy and Chainer's
``GpuDevice`` differ from the CPU:

* the device is not a context manager (``with device:`` raises, as for
  every ``chainer.backend.Device``); ``chainer.using_device`` makes it
  current, which the stand-in records;
* the array module has a random generator of its own, which NumPy's seed
  does not touch and whose state no snapshot holds; ``random.RandomState``
  takes CuPy's ``method`` and ``set_random_state`` installs one;
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
    """``cupy.random``: a generator per device, apart from NumPy's."""

    def __init__(self):
        self.state = self.RandomState(0)
        self.seeds = []  # every seed given, in order

    class RandomState(object):
        def __init__(self, seed=None, method=None):
            self.method = method
            self.seed(seed)

        def seed(self, seed=None):
            self._rs = numpy.random.RandomState(
                None if seed is None else seed % 2 ** 32)

        def standard_normal(self, size=None, dtype=float):
            return self._rs.standard_normal(size).astype(dtype).view(
                DeviceArray)

    def seed(self, seed=None):
        self.seeds.append(seed)
        self.state.seed(seed)

    def set_random_state(self, state):
        self.state = state

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


class StandInCupy(types.ModuleType):
    """The stand-in array module: NumPy's functions plus CuPy's extras."""

    def __init__(self):
        super(StandInCupy, self).__init__('standin_cupy')
        self.random = _Random()
        self.stream = _Stream()
        self.current = []  # the device made current, innermost last
        self.pool = _MemoryPool()
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

        self.cuda = types.SimpleNamespace(
            Device=Device,
            get_current_stream=lambda: self.stream,
            runtime=types.SimpleNamespace(
                getDeviceCount=lambda: 1,
                getDeviceProperties=lambda index: {
                    'name': b'Stand-in GPU %d' % index}),
            curand=types.SimpleNamespace(
                CURAND_RNG_PSEUDO_PHILOX4_32_10=PHILOX))

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
def stand_in_gpu(monkeypatch):
    """A :class:`StandInGpuDevice`, with ``CpuDevice().send`` taught to
    bring its arrays back as plain NumPy arrays."""
    from chainer.backends import _cpu
    from chainer.optimizers.adam import AdamRule
    original = _cpu._array_to_cpu

    def to_cpu(array):
        if isinstance(array, DeviceArray):
            return array.view(numpy.ndarray).copy()
        return original(array)

    monkeypatch.setattr(_cpu, '_array_to_cpu', to_cpu)
    monkeypatch.setattr(AdamRule, 'update_core_gpu', AdamRule.update_core_cpu)
    yield StandInGpuDevice()
