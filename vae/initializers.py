"""The article's weight initializer.

Glorot & Bengio (2010), "Understanding the difficulty of training deep
feedforward neural networks", eq. 16: W ~ U(-a, a) with
a = constant * sqrt(6 / (fan_in + fan_out)), so that Var[W] = a**2 / 3
= constant**2 * 2 / (fan_in + fan_out). The article takes it, with the
softplus activation, from Metzen's 2015 VAE tutorial.
"""
import math

import numpy
from chainer import backend, initializer


def xavier_bound(fan_in, fan_out, constant=1.0):
    """Half-width ``a`` of the uniform distribution U(-a, a)."""
    return constant * math.sqrt(6.0 / (fan_in + fan_out))


class Xavier(initializer.Initializer):
    """Uniform Xavier/Glorot initializer with explicit fan-in and fan-out.

    It draws with the array module of the array it fills, so it works
    unchanged on NumPy and CuPy arrays.

    Args:
        fan_in (int): Number of inputs of the layer.
        fan_out (int): Number of outputs of the layer.
        constant (float): Scale of the bound (1 in the article).
        dtype: Data type the filled array must have (``None``: any float).
    """

    def __init__(self, fan_in, fan_out, constant=1, dtype=None):
        super(Xavier, self).__init__(dtype)
        if fan_in <= 0 or fan_out <= 0:
            raise ValueError(
                'Xavier needs positive fan_in and fan_out, got %r and %r'
                % (fan_in, fan_out))
        self.fan_in = fan_in
        self.fan_out = fan_out
        self.constant = constant

    @property
    def bound(self):
        return xavier_bound(self.fan_in, self.fan_out, self.constant)

    def __call__(self, array):
        if self.dtype is not None and array.dtype != self.dtype:
            raise ValueError(
                'Xavier(dtype=%s) cannot fill an array of dtype %s'
                % (numpy.dtype(self.dtype), array.dtype))
        xp = backend.get_array_module(array)
        a = self.bound
        array[...] = xp.random.uniform(-a, a, array.shape).astype(
            array.dtype, copy=False)
