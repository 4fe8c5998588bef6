"""Batched inference helpers: NumPy in, NumPy out, on the model's device.

They move each batch to the device the model lives on and bring the results
back to the CPU once, so that callers (figures, evaluation) never branch on
the device.
"""
import chainer
import numpy


def _batched(model, func, arrays, batchsize):
    """Apply ``func`` to batches of ``arrays`` on the model's device."""
    device = model.device
    n = len(arrays[0])
    outputs = []
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        for start in range(0, n, batchsize):
            batch = [device.send(numpy.ascontiguousarray(
                a[start:start + batchsize])) for a in arrays]
            result = func(*batch)
            if not isinstance(result, tuple):
                result = (result,)
            outputs.append([chainer.backend.CpuDevice().send(
                r.array if isinstance(r, chainer.Variable) else r)
                for r in result])
    if not outputs:
        raise ValueError('no inputs given')
    return tuple(numpy.concatenate(parts) for parts in zip(*outputs))


def encode(model, x, batchsize=1000):
    """``(mu, ln_var)`` of q(z|x) for each row of ``x``, each (N, L)."""
    x = numpy.asarray(x, dtype=numpy.float32)
    return _batched(model, model.encode, (x,), batchsize)


def decode(model, z, batchsize=1000):
    """Bernoulli means decoded from every row of ``z``, (N, n_in)."""
    z = numpy.asarray(z, dtype=numpy.float32)
    return _batched(model, model.decode, (z,), batchsize)[0]


def reconstruct(model, x, batchsize=1000):
    """decode(mu(x)): the article's reconstruction through the mean."""
    x = numpy.asarray(x, dtype=numpy.float32)
    return _batched(model, model, (x,), batchsize)[0]
