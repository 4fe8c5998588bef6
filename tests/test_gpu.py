"""The model, initializer and loss on CuPy arrays.

Skipped cleanly where CuPy or a CUDA GPU is absent (CI has neither).
"""
import numpy
import pytest

from testutil import gpu_available
from vae import VAE, Xavier

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(
    not gpu_available(), reason='needs CuPy and a CUDA GPU')]


def test_xavier_fills_cupy_arrays_with_cupy():
    import cupy
    w = cupy.zeros((300, 400), dtype=cupy.float32)
    Xavier(400, 300)(w)
    bound = numpy.sqrt(6.0 / 700)
    assert isinstance(w, cupy.ndarray)
    assert float(abs(w).max()) <= bound
    assert float(w.var()) == pytest.approx(2.0 / 700, rel=0.05)


@pytest.mark.parametrize('k', [1, 3])
def test_loss_on_gpu_equals_cpu_with_the_same_noise(k):
    import chainer
    import cupy
    numpy.random.seed(0)
    cpu = VAE(20, 3, 16, 'softplus')
    gpu = cpu.copy(mode='copy')
    gpu.to_device('@cupy:0')
    x = numpy.random.rand(5, 20).astype(numpy.float32)
    # The same standard-normal noise on both devices, through F.gaussian's eps.
    eps = numpy.random.standard_normal((k * 5, 3)).astype(numpy.float32)
    originals = chainer.functions.gaussian

    def losses(model, xp):
        def fixed(mu, ln_var, **kwargs):
            return originals(mu, ln_var, eps=xp.asarray(eps))
        chainer.functions.gaussian = fixed
        try:
            return float(model.get_loss_func(k=k)(xp.asarray(x)).array)
        finally:
            chainer.functions.gaussian = originals

    assert losses(gpu, cupy) == pytest.approx(losses(cpu, numpy), rel=1e-5)


def test_backward_on_gpu():
    import cupy
    model = VAE(20, 2, 8)
    model.to_device('@cupy:0')
    loss = model.get_loss_func()(cupy.random.rand(4, 20, dtype=cupy.float32))
    loss.backward()
    for param in model.params():
        assert isinstance(param.grad, cupy.ndarray)
        assert bool(cupy.isfinite(param.grad).all())
