"""Batched inference: NumPy in, NumPy out, on the model's device.

:func:`device_batches` moves the rows of an array to the device the model
lives on, one batch at a time; the functions below bring their results back
to the CPU once, so that callers (figures, evaluation) never branch on the
device.
"""
import contextlib

import chainer
import numpy

from vae import device as device_lib


@contextlib.contextmanager
def inference_mode():
    """Test mode, and no graph kept: nothing here needs gradients, and a
    graph would hold every activation until its arrays are dropped."""
    with chainer.using_config('train', False), chainer.no_backprop_mode():
        yield


def device_batches(model, x, batchsize):
    """The rows of ``x`` in consecutive batches on the model's device.

    Args:
        model (chainer.Link): Where the batches go.
        x: Array of shape (N, ...), NumPy or on the model's device (or a
            nested list).
        batchsize (int): Rows per batch (the last batch may be shorter).

    Yields:
        float32 arrays of shape (B, ...), on the model's device.
    """
    if isinstance(x, (list, tuple)):
        x = numpy.asarray(x)
    if len(x) == 0:
        raise ValueError('no inputs given')
    device = model.device
    for start in range(0, len(x), batchsize):
        yield device.send(x[start:start + batchsize]).astype(
            numpy.float32, copy=False)


def _batched(model, func, x, batchsize):
    """``func`` applied to batches of ``x``, its outputs as NumPy arrays."""
    outputs = []
    with inference_mode():
        for batch in device_batches(model, x, batchsize):
            result = func(batch)
            if not isinstance(result, tuple):
                result = (result,)
            outputs.append([device_lib.to_cpu(
                r.array if isinstance(r, chainer.Variable) else r)
                for r in result])
    return tuple(numpy.concatenate(parts) for parts in zip(*outputs))


def encode(model, x, batchsize=1000):
    """``(mu, ln_var)`` of q(z|x) for each row of ``x``, each (N, L)."""
    return _batched(model, model.encode, x, batchsize)


def decode(model, z, batchsize=1000):
    """Bernoulli means decoded from every row of ``z``, (N, n_in)."""
    return _batched(model, model.decode, z, batchsize)[0]


def reconstruct(model, x, batchsize=1000):
    """decode(mu(x)): the article's reconstruction through the mean."""
    return _batched(model, model, x, batchsize)[0]
