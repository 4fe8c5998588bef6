"""The GPU step's kernels (vae/kernels/elementwise.py), their C bodies compiled by the
system C compiler and run on NumPy arrays (tests/ckernels.py), against the
fused NumPy arithmetic of vae/kernels/fused.py that each names as its reference.

A GPU compiles the same text with CuPy; these tests check its arithmetic,
its parameter order and its in-place updates without one. They agree to
float32 rounding, not bit for bit: the C library's exp and log1p are not
NumPy's, and CUDA contracts products and sums into fused multiply-adds.
"""
import numpy
import pytest

import ckernels
from vae.kernels import elementwise as kernels
from vae.kernels import fused

pytestmark = [pytest.mark.numerics, pytest.mark.skipif(
    ckernels.compiler() is None, reason='no C compiler (cc or gcc) found')]

_F32 = numpy.float32
EPS32 = numpy.finfo(_F32).eps


def randn(rng, *shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(_F32)


def activation_args(name, backward):
    rng = numpy.random.RandomState(0)
    a = randn(rng, 40, 30, scale=5.0)
    a[0, :8] = [-100, -30, -10, -0.0, 0, 10, 30, 100]
    h = unset(a.shape)
    if not backward:
        return [a, h]
    kernels.KERNELS['vae_' + name].reference(a, h)
    return [a, h, randn(rng, 40, 30), unset(a.shape)]


def unset(shape):
    """An output's start: NaN, which no kernel leaves."""
    return numpy.full(shape, numpy.nan, _F32)


def scalar(value, dtype=_F32):
    return numpy.array(value, dtype=dtype)


def loss_args(rec_sum):
    return [scalar(rec_sum), scalar(21.5), _F32(1 / 300), _F32(1 / 100),
            _F32(0.7), unset(()), unset(()), unset(()),
            numpy.array([10.5, 20.25, -1], _F32), scalar(True, bool),
            scalar(5, numpy.int64), scalar(-1, numpy.int64),
            scalar(3, numpy.float64), scalar(2, numpy.int64)]


def adam_args(keep):
    rng = numpy.random.RandomState(1)
    n = 3000
    v = randn(rng, n) ** 2 * _F32(1e-3)
    v[:10] = 0  # a parameter never changed: sqrt(v) + eps
    hyper = numpy.array([1e-3, 0.9, 0.999, 1e-8, 1.0])
    return [randn(rng, n, scale=0.1), scalar(7, numpy.float64), hyper,
            scalar(keep, bool), randn(rng, n), randn(rng, n, scale=1e-2), v]


def arguments(name):
    """The inputs, then the outputs (their start values), of kernel
    ``name``, with the broadcasts the step uses (k = 2 copies of B = 3)."""
    rng = numpy.random.RandomState(2)
    for act in fused.KERNELS:
        if name == 'vae_' + act:
            return activation_args(act, False)
        if name == 'vae_%s_grad' % act:
            return activation_args(act, True)
    x = rng.uniform(0, 1, (3, 50)).astype(_F32)
    mu, ln_var = randn(rng, 3, 4), randn(rng, 3, 4, scale=2.0)
    return {
        'vae_reparameterize': lambda: [
            mu, ln_var, randn(rng, 2, 3, 4), unset((2, 3, 4)),
            unset((2, 3, 4))],
        'vae_bernoulli_nll': lambda: [
            x, randn(rng, 2, 3, 50, scale=6.0),
            unset((2, 3, 50))],
        'vae_gaussian_kl': lambda: [
            mu, ln_var, unset(mu.shape), unset(mu.shape)],
        'vae_loss': lambda: loss_args(812.25),
        'vae_take_rows': lambda: [
            randn(rng, 12, 5), rng.permutation(12).astype(numpy.int64),
            scalar(2, numpy.int64), numpy.int64(3), numpy.int64(5),
            unset((3, 5))],
        'vae_take_noise': lambda: [
            randn(rng, 4 * 6, 2), scalar(3, numpy.int64), numpy.int64(12),
            unset((6, 2))],
        'vae_bernoulli_nll_grad': lambda: [
            randn(rng, 2, 3, 50, scale=6.0), x, _F32(1 / 6),
            unset((2, 3, 50))],
        'vae_noise_grad': lambda: [
            randn(rng, 6, 4), randn(rng, 6, 4), unset((6, 4))],
        'vae_gaussian_kl_grad': lambda: [
            randn(rng, 3, 4), randn(rng, 3, 4), mu, numpy.exp(ln_var),
            _F32(0.5 / 3), unset(mu.shape), unset(mu.shape)],
        'vae_adam': lambda: adam_args(True),
    }[name]()


def run_both(kernel, args, body=None):
    """The outputs of the compiled body and of the reference, from the same
    arguments."""
    n_in = len(kernels.parse_params(kernel.in_params))
    c_args = [numpy.copy(a) for a in args]
    ckernels.compile_kernel(kernel.in_params, kernel.out_params,
                            body or kernel.body, kernel.name)(*c_args)
    ref_args = [numpy.copy(a) for a in args]
    kernel.reference(*ref_args)
    return c_args[n_in:], ref_args[n_in:], args[:n_in]


def assert_float32_close(got, want, inputs):
    """Equal up to a few roundings of float32 at the scale of the
    operands (a sum of terms of that size rounds at that scale)."""
    scale = max([1.0] + [float(numpy.abs(numpy.asarray(a, float)).max())
                         for a in inputs if numpy.size(a)])
    if want.dtype.kind == 'f':
        numpy.testing.assert_allclose(got, want, rtol=8 * EPS32,
                                      atol=8 * EPS32 * scale)
    else:
        numpy.testing.assert_array_equal(got, want)


def test_every_kernel_is_checked():
    for name in kernels.KERNELS:
        assert len(arguments(name)) == len(
            kernels.parse_params(kernels.KERNELS[name].in_params)
            + kernels.parse_params(kernels.KERNELS[name].out_params))


@pytest.mark.parametrize('name', list(kernels.KERNELS))
def test_a_kernels_c_body_computes_its_numpy_reference(name):
    kernel = kernels.KERNELS[name]
    args = arguments(name)
    got, want, inputs = run_both(kernel, args)
    for g, w in zip(got, want):
        assert numpy.isfinite(w).all() or w.dtype.kind != 'f'
        assert_float32_close(g, w, inputs)
    # every output was written (or, updated in place, changed)
    for g, start in zip(got, args[len(inputs):]):
        assert not numpy.array_equal(g, start, equal_nan=False) or \
            g.dtype.kind != 'f', name


@pytest.mark.parametrize('rec_sum', [numpy.inf, numpy.nan])
def test_the_loss_kernel_stops_the_updates_at_a_non_finite_loss(rec_sum):
    kernel = kernels.KERNELS['vae_loss']
    got, want, _ = run_both(kernel, loss_args(rec_sum))
    for g, w in zip(got, want):
        numpy.testing.assert_array_equal(g, w)
    keep, iteration, first_bad, t, batch = got[4:]
    assert not keep and iteration == 6 and first_bad == 5 and t == 3
    assert batch == 3


def test_adam_kernel_with_keep_false_changes_nothing():
    kernel = kernels.KERNELS['vae_adam']
    args = adam_args(False)
    got, want, _ = run_both(kernel, args)
    for g, w, start in zip(got, want, args[4:]):
        numpy.testing.assert_array_equal(g, start)
        numpy.testing.assert_array_equal(w, start)


def test_a_wrong_body_is_caught():
    # the comparison can fail: softplus without its max(a, 0) term
    kernel = kernels.KERNELS['vae_softplus']
    args = arguments('vae_softplus')
    got, want, inputs = run_both(kernel, args,
                                 body='h = log1p(exp(-fabs(a)));')
    with pytest.raises(AssertionError):
        assert_float32_close(got[0], want[0], inputs)
