"""Everything that differs between the CPU and a GPU, in small functions.

The rest of the project is written once for both: it moves the model with
``model.to_device(device)``, lets Chainer's converters move each batch, and
calls the functions below where a GPU needs something the CPU does not.
``tests/test_device.py`` runs each of them on the CPU through a stand-in
for a GPU and CuPy (``tests/standin.py``); what only a real GPU can check is
listed in the README ("GPU").

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
                seed, method=xp.cuda.curand.CURAND_RNG_PSEUDO_PHILOX4_32_10))


def iteration_seed(seed, iteration):
    """A 64-bit seed for the noise of one iteration of a run."""
    state = numpy.random.SeedSequence([seed, iteration]).generate_state(
        1, numpy.uint64)
    return int(state[0])


def reseed_noise(device, seed, iteration):
    """On a GPU, restart the noise generator for ``iteration`` of the run
    seeded with ``seed``; on the CPU nothing (the snapshot holds NumPy's)."""
    if not is_cpu(device):
        with chainer.using_device(device):
            device.xp.random.seed(iteration_seed(seed, iteration))


def reseed(device, seed):
    """Restart the generator that ``device``'s noise comes from (NumPy's
    on the CPU, the device's on a GPU) with ``seed`` (32 bits)."""
    if is_cpu(device):
        numpy.random.seed(seed)
    else:
        with chainer.using_device(device):
            device.xp.random.seed(seed)


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
    """The device's memory pool (``None`` on the CPU)."""
    return None if is_cpu(device) else device.xp.get_default_memory_pool()


def describe(device, cpu_count=None):
    """The device in words: the CPU with its cores, or the GPU's name."""
    if is_cpu(device):
        import os
        return 'CPU (%d cores), NumPy %s' % (cpu_count or os.cpu_count(),
                                             numpy.__version__)
    with chainer.using_device(device):
        props = device.xp.cuda.runtime.getDeviceProperties(
            device.xp.cuda.Device().id)
    name = props['name']
    return '%s (%s)' % (device, name.decode() if isinstance(name, bytes)
                        else name)
