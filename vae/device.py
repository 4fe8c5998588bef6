"""Choosing the compute device, with messages that say what is missing."""
import chainer


class DeviceError(RuntimeError):
    """The requested device cannot be used on this machine."""


def device_spec(gpu=None, device=None):
    """A Chainer device specifier from the article's ``--gpu`` or ``--device``.

    ``gpu`` N >= 0 means CuPy on GPU N and -1 the CPU; ``device`` is any
    Chainer specifier (``@numpy``, ``@cupy:0``, ...) and wins when both are
    given.
    """
    if device is not None:
        return device
    if gpu is None or gpu < 0:
        return '@numpy'
    return '@cupy:%d' % gpu


def get_device(gpu=None, device=None):
    """The :class:`chainer.backend.Device` to use, checked before any work.

    Raises:
        DeviceError: CuPy is not installed or no GPU is visible, with the
            fix in the message.
    """
    spec = device_spec(gpu, device)
    if isinstance(spec, str) and spec.startswith('@cupy'):
        _check_cupy(spec)
    try:
        dev = chainer.get_device(spec)
    except Exception as e:  # Chainer raises several types for bad specs
        raise DeviceError('cannot use device %r: %s' % (spec, e))
    return dev


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
