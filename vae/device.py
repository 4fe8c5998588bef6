"""Everything that differs between the CPU and a GPU, in small functions.

The rest of the project is written once for both: it moves the model with
``model.to_device(device)``, lets Chainer's converters move each batch, and
calls the functions below where a GPU needs something the CPU does not.
``tests/test_device.py`` runs each of them on the CPU through a stand-in
for a GPU and CuPy (``tests/standin.py``); what only a real GPU can check is
listed in docs/gpu.md.

Random numbers. NumPy's global generator serves the CPU: it draws the
initial weights, the shuffling and, on the CPU, the noise of the
reparameterization, and its state goes into every snapshot. A GPU draws its
noise from CuPy's generator, whose state lives on the device and cannot be
saved, so on a GPU the noise generator is reseeded at every iteration from
(seed, iteration) (:func:`reseed_noise`): a resumed run then draws what an
uninterrupted one would have, and nothing but the iteration count needs
saving. Its generator is Philox (counter-based), whose reseeding costs
nothing, unlike cuRAND's default XORWOW.
"""
import os
import weakref

import chainer
import numpy


class DeviceError(RuntimeError):
    """The requested device cannot be used on this machine."""


def device_spec(gpu=None, device=None, intra_rank=0):
    """A Chainer device specifier from the article's ``--gpu`` or ``--device``.

    ``gpu`` N >= 0 means CuPy on GPU N and -1 the CPU; ``device`` is any
    Chainer specifier (``@numpy``, ``@cupy:0``, ...) and wins when both are
    given. In a run over several processes, ``intra_rank`` is the rank of
    this process among those on its machine, and ``gpu`` N puts it on GPU
    N + ``intra_rank``: one GPU per process (ChainerMN's convention).
    """
    if device is not None:
        return device
    if gpu is None or gpu < 0:
        return '@numpy'
    return '@cupy:%d' % (gpu + intra_rank)


def get_device(gpu=None, device=None, intra_rank=0):
    """The :class:`chainer.backend.Device` to use, checked before any work
    (arguments as :func:`device_spec`'s).

    Raises:
        DeviceError: CuPy is not installed or no GPU is visible, with the
            fix in the message.
    """
    spec = device_spec(gpu, device, intra_rank)
    if isinstance(spec, str) and spec.startswith('@cupy'):
        _check_cupy(spec)
    try:
        return chainer.get_device(spec)
    except Exception as e:  # Chainer raises several types for bad specs
        raise DeviceError('cannot use device %r: %s' % (spec, e))


def _check_cupy(spec):
    try:
        import cupy
    except ImportError:
        raise DeviceError(
            '%s needs CuPy, which is not installed. Install the CuPy wheel '
            'for your CUDA version (for example `pip install cupy-cuda12x`), '
            'or train on the CPU with --gpu -1.' % spec)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError when no driver is present
        raise DeviceError('%s: CuPy is installed but no CUDA GPU is usable '
                          '(%s). Train on the CPU with --gpu -1.' % (spec, e))
    index = int(spec.split(':')[1]) if ':' in spec else 0
    if index >= count:
        raise DeviceError('%s: only %d CUDA GPU(s) are visible'
                          % (spec, count))


def is_cpu(device):
    """True where ``device`` computes with NumPy."""
    return device.xp is numpy


def seed(device, seed):
    """Seed NumPy's generator and, on a GPU, the device's noise generator."""
    numpy.random.seed(seed)
    if not is_cpu(device):
        xp = device.xp
        with chainer.using_device(device):  # CuPy keeps a generator per GPU
            xp.random.set_random_state(xp.random.RandomState(
                _seed_value(seed),
                method=xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10))


def _seed_value(seed):
    """A seed as CuPy's ``RandomState.seed`` takes it on NumPy 2 too: it
    casts the seed to uint64 with ``casting='safe'``, which refuses the
    int64 a Python int becomes."""
    return numpy.uint64(seed)


def derive_seed(seed, *path, bits=64, spawn_key=()):
    """The one derivation of every seed a run uses besides its own: an
    integer of ``bits`` (32: what ``numpy.random.seed`` takes; 64) from
    NumPy's ``SeedSequence([seed, *path], spawn_key)``, whose outputs for
    different paths are independent streams. The paths in use: (iteration)
    for the noise of an iteration on a GPU, (epoch) with spawn key (1,) for
    an epoch's draws on the CUDA-graph path, (rank) for a rank's own
    stream, (part, batch) for an evaluation seeded per batch."""
    if bits not in (32, 64):
        raise ValueError('a seed has 32 or 64 bits, not %r' % (bits,))
    dtype = numpy.uint32 if bits == 32 else numpy.uint64
    state = numpy.random.SeedSequence(
        [seed] + list(path), spawn_key=spawn_key).generate_state(1, dtype)
    return int(state[0])


def iteration_seed(seed, iteration):
    """The 64-bit seed of the noise of one iteration of a run."""
    return derive_seed(seed, iteration)


def epoch_seed(seed, epoch):
    """The 64-bit seed of the draws of one epoch of a run (the CUDA-graph
    path draws an epoch's order and noise at its start), apart from the
    seeds of :func:`iteration_seed`."""
    return derive_seed(seed, epoch, spawn_key=(1,))


def reseed_noise(device, seed, iteration):
    """On a GPU, restart the noise generator for ``iteration`` of the run
    seeded with ``seed``; on the CPU nothing (the snapshot holds NumPy's)."""
    if not is_cpu(device):
        reseed(device, iteration_seed(seed, iteration))


def reseed(device, seed):
    """Restart the generator that ``device``'s noise comes from (NumPy's
    on the CPU, where ``seed`` must fit 32 bits; the device's on a GPU)
    with ``seed``."""
    if is_cpu(device):
        numpy.random.seed(seed)
    else:
        with chainer.using_device(device):
            device.xp.random.seed(_seed_value(seed))


def current(device):
    """A context in which ``device`` is CuPy's current device (a GPU's
    arrays, streams, generator and cuBLAS handles belong to one device;
    CuPy uses the current one's). Nothing on the CPU."""
    return chainer.using_device(device)


def standard_normal(xp, shape, dtype):
    """Standard normal noise from the generator of ``xp``, as
    ``chainer.functions.gaussian`` draws it when given none."""
    if xp is numpy:
        return numpy.random.standard_normal(shape).astype(dtype, copy=False)
    return xp.random.standard_normal(shape, dtype=dtype)


def to_cpu(array):
    """``array`` as a NumPy array (a copy from a GPU, itself on the CPU)."""
    return chainer.backend.CpuDevice().send(array)


def synchronize(device):
    """Wait until ``device`` has finished its queued work."""
    if not is_cpu(device):
        with chainer.using_device(device):
            device.xp.cuda.get_current_stream().synchronize()


def memory_pool(device):
    """The memory pool CuPy allocates from on ``device`` (``None`` on the
    CPU)."""
    if is_cpu(device):
        return None
    return _stream_ordered_pools.get(device.xp, {}).get(str(device)) or \
        device.xp.get_default_memory_pool()


# the stream-ordered pool of each device that uses one: array module ->
# {device name: pool}
_stream_ordered_pools = weakref.WeakKeyDictionary()


def use_stream_ordered_memory(device):
    """Make CuPy allocate from CUDA's stream-ordered pool, which a CUDA
    graph's capture needs; returns why it cannot, or None."""
    cuda = device.xp.cuda
    pools = _stream_ordered_pools.setdefault(device.xp, {})
    if str(device) in pools:
        return None
    try:
        with chainer.using_device(device):
            pool = cuda.MemoryAsyncPool()
            cuda.set_allocator(pool.malloc)
    except Exception as e:  # AttributeError (old CuPy), CUDA errors
        return ('CuPy cannot use the stream-ordered memory pool a CUDA '
                'graph needs (%s: %s)' % (type(e).__name__, e))
    pools[str(device)] = pool
    return None


def stream(device):
    """A new stream on the GPU ``device``. It is a blocking one: work on
    the default stream (Chainer's, the converters') is ordered with it."""
    with chainer.using_device(device):
        return device.xp.cuda.Stream()


def capture(device, stream, func):
    """Record one call of ``func`` on ``stream`` as a CUDA graph, without
    running it; returns a function that replays the graph on ``stream``."""
    with chainer.using_device(device), stream:
        stream.begin_capture()
        try:
            func()
        finally:
            graph = stream.end_capture()
    return lambda: graph.launch(stream)


#: OpenBLAS's kernels for x86 CPUs without AVX (threadpoolctl's
#: ``architecture``, compared in lower case): what OpenBLAS runs where it does
#: not know the CPU. ``Prescott`` is its fallback for an unknown CPU (NumPy
#: 1.26's OpenBLAS 0.3.23 picks it on some current Intel CPUs), ``Nehalem`` and
#: ``Core2`` those for unknown Intel models without AVX in some versions,
#: ``Generic`` the plain C kernel of a build without x86 kernels (and BLIS's
#: generic configuration); the others are the kernels of CPUs older than AVX
#: (NumPy 2.4's OpenBLAS 0.3.31 names a forced Prescott or Core2 ``Katmai``).
#: All use 128-bit SSE: on a CPU with AVX2 (256-bit FMA) a product runs at a
#: third to a half of its speed or less. ``Sandybridge`` (AVX without FMA) and
#: the Bulldozer family are left out: real kernels of AVX machines, which one
#: may choose on purpose (``make test-kernels`` runs the numerical tests under
#: Sandybridge).
GENERIC_KERNELS = frozenset(name.lower() for name in (
    'Generic', 'Unknown', 'Prescott', 'Katmai', 'Coppermine', 'Northwood',
    'Banias', 'Core2', 'Penryn', 'Dunnington', 'Nehalem', 'Atom', 'Nano',
    'Athlon', 'Opteron', 'Opteron_SSE3', 'Barcelona', 'Bobcat'))

_BLAS_NAMES = {'openblas': 'OpenBLAS', 'mkl': 'MKL', 'blis': 'BLIS',
               'flexiblas': 'FlexiBLAS'}


def numpy_blas():
    """threadpoolctl's records (dicts) of the BLAS that NumPy calls: the
    one NumPy's wheel bundles (loaded from beside NumPy), or every BLAS
    loaded where none lies there (a NumPy linked to the system's)."""
    import threadpoolctl
    blas = [info for info in threadpoolctl.threadpool_info()
            if info.get('user_api') == 'blas']
    site = os.path.dirname(os.path.dirname(os.path.abspath(numpy.__file__)))
    own = [info for info in blas if os.path.relpath(
        os.path.abspath(info.get('filepath', '')), site).startswith('numpy')]
    return own or blas


def cpu_features():
    """Names of the SIMD extensions that this CPU and its OS support
    (``'AVX2'``, ``'AVX512F'``, ...), as NumPy detected them."""
    try:  # NumPy 2
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1
        from numpy.core._multiarray_umath import __cpu_features__
    return frozenset(name for name, on in __cpu_features__.items() if on)


def describe_blas(blas):
    """The BLAS libraries in words: ``'OpenBLAS 0.3.31 (SkylakeX kernel,
    2 threads)'`` for each of threadpoolctl's records in ``blas``."""
    return ', '.join(
        '%s %s (%s kernel, %s threads)' % (
            _BLAS_NAMES.get(info.get('internal_api'),
                            info.get('internal_api')),
            info.get('version'), info.get('architecture') or 'no named',
            info.get('num_threads'))
        for info in blas) or 'none found'


def generic_kernel_note(blas, features, forced=None):
    """One line saying that the BLAS runs a generic kernel on a CPU that
    could do better, and what to do; ``None`` when it does not.

    Args:
        blas (list of dict): threadpoolctl's records of NumPy's BLAS.
        features (set of str): The CPU's extensions (:func:`cpu_features`).
        forced (str): ``$OPENBLAS_CORETYPE``, where it is set.

    Returns:
        str or None: a note when a kernel of :data:`GENERIC_KERNELS` runs
        on a CPU with AVX2.
    """
    if 'AVX2' not in features:
        return None
    generic = [info for info in blas
               if (info.get('architecture') or '').lower() in GENERIC_KERNELS]
    if not generic:
        return None
    info = generic[0]
    if forced:
        fix = 'OPENBLAS_CORETYPE=%s forces it: unset it' % forced
    else:
        fix = ('use the default NumPy 2 stack (`make venv`), whose OpenBLAS '
               'knows current CPUs')
        if info.get('internal_api') == 'openblas':
            fix += ', or set OPENBLAS_CORETYPE=%s' % (
                'SkylakeX' if 'AVX512F' in features else 'Haswell')
    return ('NumPy\'s BLAS, %s, runs a generic kernel on this CPU, which '
            'has AVX2: matrix products take several times as long as they '
            'need to; %s' % (describe_blas([info]), fix))


def blas_note():
    """:func:`generic_kernel_note` for NumPy's BLAS on this machine."""
    return generic_kernel_note(numpy_blas(), cpu_features(),
                               os.environ.get('OPENBLAS_CORETYPE'))


def environment(device):
    """What computes a run, as a JSON-ready dict: the device, the versions,
    and the BLAS library with its thread count. A CPU run is bit-for-bit
    reproducible only with the same BLAS build, CPU kernel and number of
    BLAS threads (OpenBLAS rounds a product differently on 1 thread than on
    2)."""
    import platform
    import threadpoolctl
    blas = [{key: info.get(key) for key in (
        'internal_api', 'version', 'num_threads', 'architecture')}
        for info in threadpoolctl.threadpool_info()
        if info.get('user_api') == 'blas']
    return {'device': describe(device), 'python': platform.python_version(),
            'numpy': numpy.__version__, 'chainer': chainer.__version__,
            'blas': blas}


def describe(device, cpu_count=None):
    """The device in words: the CPU with its cores, or the GPU's name."""
    if is_cpu(device):
        return 'CPU (%d cores), NumPy %s' % (cpu_count or os.cpu_count(),
                                             numpy.__version__)
    with chainer.using_device(device):
        props = device.xp.cuda.runtime.getDeviceProperties(
            device.xp.cuda.Device().id)
    name = props['name']
    return '%s (%s)' % (device, name.decode() if isinstance(name, bytes)
                        else name)
