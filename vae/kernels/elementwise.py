"""The element-wise kernels of the CUDA-graph step, each written once as C.

On a GPU each :class:`Kernel` becomes one ``cupy.ElementwiseKernel`` (one
launch, no temporaries) built from :attr:`Kernel.body`; the same text is
compiled by the system C compiler in the CPU tests (``tests/ckernels.py``,
``tests/kernels/test_elementwise.py``), inside a loop over the elements, and
compared there with :attr:`Kernel.reference`: the NumPy arithmetic of
:mod:`vae.kernels.fused`, :mod:`vae.kernels.elbo` and :mod:`vae.kernels.adam`
that the fused CPU path runs. The stand-in GPU of the tests runs the
reference at each launch.

What a body may use, so that it compiles both ways: the parameters by name
(an element of each non-``raw`` argument; ``raw`` arguments indexed, as
``t[0]``), ``T`` for the element type of the ``T`` parameters, and C99's
type-generic math (``exp``, ``log1p``, ``fabs``, ``fmax``, ``sqrt``,
``pow``, ``tanh``, ``isfinite``, ``isnan``): on a ``float`` these are the
float functions in CUDA C++ and, through ``<tgmath.h>``, in the C test, so
each operation rounds to float32 as NumPy's does. Literals are ``(T)1``,
never ``1.0`` (a double), except in the float64 arithmetic of Adam's
``alpha_t``, which Chainer computes in Python floats.

CuPy copies an input whose memory overlaps an output unless it is the same
array object (``_copy_in_args_if_needed``): a kernel that updates in place
is given the same array as input and output, and the step keeps every
other buffer in an allocation of its own.
"""
import collections

import numpy

from vae.kernels import adam
from vae.kernels import elbo
from vae.kernels import fused

_F32 = numpy.float32

Kernel = collections.namedtuple(
    'Kernel', 'name in_params out_params body reference')
Kernel.__doc__ = """One element-wise kernel: CuPy's ``ElementwiseKernel(
in_params, out_params, body, name)``, and ``reference(*args)``, which
takes NumPy arrays (the inputs, then the outputs, as the kernel is called)
and writes the outputs as the fused NumPy code computes them."""

KERNELS = collections.OrderedDict()


def _kernel(name, in_params, out_params, body):
    def register(reference):
        KERNELS[name] = Kernel(name, in_params, out_params, body, reference)
        return reference
    return register


# -- activations: forward (a -> h) and backward (a, h, gh -> ga) -------------

#: activation -> the C bodies of its forward (a -> h) and backward
#: (a, h, gh -> ga) kernels; their references are vae.kernels.fused.KERNELS'.
_ACTIVATION_BODIES = {
    'softplus': ('h = fmax(a, (T)0) + log1p(exp(-fabs(a)));',
                 'ga = ((T)1 - (T)1 / ((T)1 + exp(a))) * gh;'),
    'tanh': ('h = tanh(a);',
             'ga = ((T)1 - h * h) * gh;'),
    'sigmoid': ('h = tanh(a * (T)0.5) * (T)0.5 + (T)0.5;',
                'ga = gh * h * ((T)1 - h);'),
    'relu': ('h = (isnan(a) || a > (T)0) ? a : (T)0;',
             'ga = gh * (T)(h > (T)0);'),
}


def _activation_kernels(name, forward_body, backward_body):
    """Register the two kernels of activation ``name``."""
    forward, backward = fused.KERNELS[name]

    def run_forward(a, h):
        h[...] = forward(a)

    def run_backward(a, h, gh, ga):
        ga[...] = backward(a, h, gh)

    _kernel('vae_' + name, 'T a', 'T h', forward_body)(run_forward)
    _kernel('vae_%s_grad' % name, 'T a, T h, T gh', 'T ga',
            backward_body)(run_backward)


for _name, (_forward, _backward) in _ACTIVATION_BODIES.items():
    _activation_kernels(_name, _forward, _backward)


#: activation -> (forward kernel's name, backward kernel's name)
ACTIVATIONS = {name: ('vae_' + name, 'vae_%s_grad' % name)
               for name in fused.KERNELS}


# -- the batch and its noise, gathered from the epoch's --------------------

@_kernel('vae_take_rows',
         'raw T data, raw int64 order, raw int64 batch, int64 rows, '
         'int64 width', 'T x',
         'x = data[order[batch[0] * rows + i / width] * width + i % width];')
def _take_rows(data, order, batch, rows, width, x):
    # x = data[order[b * rows:(b + 1) * rows]] for the batch b
    start = int(batch) * int(rows)
    x[...] = numpy.take(data, order[start:start + int(rows)], axis=0)


@_kernel('vae_take_noise', 'raw T noise, raw int64 batch, int64 size',
         'T eps', 'eps = noise[batch[0] * size + i];')
def _take_noise(noise, batch, size, eps):
    # eps = the batch b's slice of the epoch's noise
    start = int(batch) * int(size)
    eps[...] = noise.reshape(-1)[start:start + int(size)].reshape(eps.shape)


# -- the sample, the terms of the loss and their gradients --------------------

@_kernel('vae_reparameterize', 'T mu, T ln_var, T eps', 'T noise, T z',
         'noise = exp(ln_var * (T)0.5) * eps; z = mu + noise;')
def _reparameterize(mu, ln_var, eps, noise, z):
    noise[...], z[...] = fused.reparameterize(mu, ln_var, eps)


@_kernel('vae_bernoulli_nll', 'T x, T y', 'T nll',
         'nll = fmax(y, (T)0) + log1p(exp(-fabs(y))) - x * y;')
def _bernoulli_nll(x, y, nll):
    nll[...] = elbo.bernoulli_nll(x, y)


@_kernel('vae_gaussian_kl', 'T mu, T ln_var', 'T var, T kl',
         'var = exp(ln_var); '
         'kl = (mu * mu + var - ln_var + (T)-1) * (T)0.5;')
def _gaussian_kl(mu, ln_var, var, kl):
    var[...] = numpy.exp(ln_var)
    kl[...] = elbo.gaussian_kl(mu, ln_var, var)


@_kernel('vae_loss',
         'float32 rec_sum, float32 kl_sum, float32 rec_scale, '
         'float32 kl_scale, float32 C',
         'float32 reconstr, float32 kl, float32 loss, raw float32 totals, '
         'bool keep, int64 iteration, int64 first_bad, float64 t, '
         'int64 batch',
         'reconstr = rec_scale * rec_sum; kl = kl_scale * kl_sum; '
         'loss = reconstr + C * kl; '
         'totals[0] += loss; totals[1] += reconstr; totals[2] += kl; '
         'if (keep && !isfinite(loss)) first_bad = iteration; '
         'keep = keep && isfinite(loss); iteration += 1; t += keep; '
         'batch += 1;')
def _loss(rec_sum, kl_sum, rec_scale, kl_scale, C, reconstr, kl, loss,
          totals, keep, iteration, first_bad, t, batch):
    # the scalars of fused.forward, their sums over the epoch (in float32
    # and in order, as chainer.reporter.Summary adds reported values), the
    # non-finite guard (a step whose loss is not finite, and every later
    # one, applies no update), the count of Adam's steps
    # (adam.adam_step_count) and the index of the next batch of the epoch
    reconstr[...], kl[...], loss[...] = fused.loss_terms(
        rec_sum, kl_sum, _F32(rec_scale), _F32(kl_scale), _F32(C))
    for i, value in enumerate((loss, reconstr, kl)):
        totals[i:i + 1] += value
    finite = numpy.isfinite(loss)
    numpy.copyto(first_bad, iteration, where=keep & ~finite)
    numpy.logical_and(keep, finite, out=keep)
    iteration += 1
    adam.adam_step_count(t, keep)
    batch += 1


@_kernel('vae_bernoulli_nll_grad', 'T y, T x, float32 g', 'T gy',
         'gy = ((T)1 - (T)1 / ((T)1 + exp(y))) * g + x * -g;')
def _bernoulli_nll_grad(y, x, g, gy):
    gy[...] = fused.bernoulli_nll_grad(y, x, _F32(g))


@_kernel('vae_noise_grad', 'T gz, T noise', 'T g_ln_var',
         'g_ln_var = gz * noise * (T)0.5;')
def _noise_grad(gz, noise, g_ln_var):
    g_ln_var[...] = fused.noise_grad(gz, noise)


@_kernel('vae_gaussian_kl_grad',
         'T g_mu_in, T g_ln_var_in, T mu, T var, float32 g_half',
         'T g_mu, T g_ln_var',
         'T g_mu_kl = g_half * mu; '
         'g_mu = (g_mu_kl + g_mu_kl) + g_mu_in; '
         'g_ln_var = (-g_half + var * g_half) + g_ln_var_in;')
def _gaussian_kl_grad(g_mu_in, g_ln_var_in, mu, var, g_half, g_mu, g_ln_var):
    g_mu[...], g_ln_var[...] = fused.gaussian_kl_grad(
        g_mu_in, g_ln_var_in, mu, var, _F32(g_half))


# -- Adam ------------------------------------------------------------------

@_kernel('vae_adam', 'T g, raw float64 t, raw float64 hyper, raw bool keep',
         'T p, T m, T v',
         'if (keep[0]) { '
         'T alpha_t = (T)(hyper[0] * sqrt(1.0 - pow(hyper[2], t[0])) '
         '/ (1.0 - pow(hyper[1], t[0]))); '
         'm += (T)(1.0 - hyper[1]) * (g - m); '
         'v += (T)(1.0 - hyper[2]) * (g * g - v); '
         'p += alpha_t / (sqrt(v) + (T)hyper[3]) * m * (T)(-hyper[4]); }')
def _adam(g, t, hyper, keep, p, m, v):
    # one pass over the flat buffers; the step count t was advanced by
    # vae_loss (a kernel over all elements cannot count once)
    adam.adam_update(numpy, p, g, m, v, t, hyper, keep=keep)


def build(xp):
    """The kernels for the array module ``xp`` (CuPy, or a stand-in with
    its ``ElementwiseKernel``): name -> callable, called with the inputs
    and then the outputs, as CuPy's kernels are."""
    return {name: xp.ElementwiseKernel(k.in_params, k.out_params, k.body,
                                       name)
            for name, k in KERNELS.items()}


def parse_params(params):
    """``[(dtype or 'T', name, raw)]`` of a parameter list such as
    ``'T a, raw float64 t'``."""
    parsed = []
    for param in params.split(','):
        words = param.split()
        raw = words[0] == 'raw'
        if raw:
            words = words[1:]
        kind, name = words
        parsed.append((kind, name, raw))
    return parsed
