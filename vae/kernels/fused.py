"""The article's loss and its gradients as plain array code, written once
for NumPy and CuPy, and the one function node that runs them.

Chainer builds :meth:`vae.model.VAE.get_loss_func`'s reference graph from 26
function nodes and backpropagates through 47. ``get_loss_func(fused=True)``,
what training runs on the CPU by default, is :func:`loss_func` here: one node
(:class:`VAELoss`) whose forward and backward are :func:`forward` and
:func:`backward`, one pass of array operations over the model's parameters.
The CUDA-graph step (:mod:`vae.kernels.cuda_graph`) runs the same two
functions' operations as GPU kernels.

Every operation is the one Chainer 7.8.1 performs on the CPU, in the same
order and precision (``functions/connection/linear.py``, ``activation/*.py``,
``noise/gaussian.py``, ``array/tile.py``, ``loss/vae.py``, and
``chainer/_backprop.py`` for the order in which gradients are summed), and
the terms of the ELBO are :mod:`vae.kernels.elbo`'s, so that on NumPy the
fused loss equals the reference bit for bit (``tests/kernels``); the CPU tests
thereby check the GPU's formulas too.

The matrix products go through ``dot(a, b, out=None)``, given by the
caller: ``numpy.dot`` or ``cupy.dot`` eagerly, cuBLAS in a CUDA graph. ``a``
and ``b`` may be transposed views (``W.T``) of C-contiguous arrays.
"""
import collections

import chainer
import numpy
from chainer import function_node

from vae import device as device_lib
from vae.kernels import elbo
from vae.kernels.adam import flat_buffer, ordered_params
from vae.model import LAYERS, sample_count

_F32 = numpy.float32

# The fused code names the layers of vae.model; a layer added there without
# its gradient here fails at import rather than training a different model.
LE1, LE2, LE3_MU, LE3_LN_VAR, LD1, LD2, LD3 = LAYERS


# -- element-wise kernels, each Chainer's CPU formula -------------------------
# Each backward takes the pre-activation a, the activation h and the
# gradient gh with respect to h, and returns the gradient with respect to a.

def _xp(a):
    return chainer.backend.get_array_module(a)


def softplus_grad(a, h, gh):
    # SoftplusGrad.forward_cpu: (1 - 1 / (1 + exp(x))) * gy; exp may
    # overflow to inf, which gives the right limit 1 (NumPy warns there)
    xp = _xp(a)
    with numpy.errstate(over='ignore'):
        t = xp.exp(a)
    t += 1
    xp.divide(1, t, out=t)
    xp.subtract(1, t, out=t)
    t *= gh
    return t


def tanh(a):
    return _xp(a).tanh(a)


def tanh_grad(a, h, gh):
    # TanhGrad.forward_cpu: gy * (1 - y * y)
    t = h * h
    _xp(a).subtract(_F32(1), t, out=t)
    t *= gh
    return t


def sigmoid(a):
    # Sigmoid.forward_cpu: tanh(x / 2) / 2 + 1 / 2
    half = _F32(0.5)
    t = a * half
    _xp(a).tanh(t, out=t)
    t *= half
    t += half
    return t


def sigmoid_grad(a, h, gh):
    # SigmoidGrad.forward_cpu: gy * y * (1 - y)
    t = gh * h
    t *= _xp(a).subtract(_F32(1), h)
    return t


def relu(a):
    # ReLU.forward_cpu: maximum(x, 0), against an array of zeros (faster)
    xp = _xp(a)
    h = xp.zeros_like(a)
    return xp.maximum(a, h, out=h)


def relu_grad(a, h, gh):
    # ReLUGrad2.forward_cpu: gy * (y > 0)
    return _xp(a).multiply(gh, h > 0, dtype=gh.dtype)


#: An activation of the fused code: ``forward(a) -> h`` and
#: ``backward(a, h, gh) -> ga``.
Activation = collections.namedtuple('Activation', 'forward backward')

#: The hidden activations the fused code implements (a subset of
#: vae.model.ACTIVATIONS), by name; :func:`loss_func` looks its model's up
#: once and passes the functions down.
KERNELS = {
    'softplus': Activation(elbo.softplus, softplus_grad),
    'tanh': Activation(tanh, tanh_grad),
    'sigmoid': Activation(sigmoid, sigmoid_grad),
    'relu': Activation(relu, relu_grad),
}


# -- the element-wise steps of the loss and its gradients --------------------
# Each is what one GPU kernel of vae.kernels.elementwise computes; there,
# each is the NumPy reference of its kernel's C body.

def reparameterize(mu, ln_var, eps):
    """``F.gaussian``'s sample: ``(noise, z)`` with ``noise = exp(ln_var /
    2) * eps`` and ``z = mu + noise`` (``mu``, ``ln_var`` broadcast against
    ``eps``)."""
    noise = _xp(eps).exp(ln_var * _F32(0.5)) * eps
    return noise, mu + noise


def loss_terms(rec_sum, kl_sum, rec_scale, kl_scale, C):
    """``(reconstr, kl, loss)`` from the sums of the two terms: each sum
    scaled by its float32 factor (1 / (k B), 1 / B), ``loss = reconstr + C
    kl``."""
    reconstr = rec_scale * rec_sum
    kl = kl_scale * kl_sum
    return reconstr, kl, reconstr + C * kl


def bernoulli_nll_grad(y, x, g):
    """d/dy of ``g * (softplus(y) - x y)``: the softplus branch, then the
    -x branch, as ``F.bernoulli_nll``'s graph sums them."""
    gy = softplus_grad(y, None, g)
    gy += x * -g
    return gy


def noise_grad(gz, noise):
    """``F.gaussian``'s backward to ``ln_var``: ``gz * exp(ln_var / 2) * eps
    / 2``, from the ``noise`` of :func:`reparameterize`."""
    g = gz * noise
    g *= _F32(0.5)
    return g


def gaussian_kl_grad(g_mu, g_ln_var, mu, var, g_half):
    """The KL term's gradients added to those that reached ``mu`` and
    ``ln_var`` from the sample, with ``g_half = g_kl / (2 B)``: ``(g_mu',
    g_ln_var')``. Chainer's backprop reaches the KL nodes first (by rank)
    and sums each variable's gradients as they arrive, so the KL terms come
    first; the order of a three-term float sum matters."""
    g_mu_kl = g_half * mu  # mu * mu: one term for each factor
    return ((g_mu_kl + g_mu_kl) + g_mu,
            (-g_half + var * g_half) + g_ln_var)


# -- the loss -----------------------------------------------------------------

def _linear(dot, p, name, h):
    # LinearFunction.forward: dot(x, W.T) into y, then y += b
    y = dot(h, p['/%s/W' % name].T)
    y += p['/%s/b' % name]
    return y


def forward(xp, dot, p, x, eps, act, k, C):
    """The negative ELBO of the batch ``x`` with the noise ``eps``.

    Args:
        xp: ``numpy`` or ``cupy``.
        dot: The matrix product (see the module docstring).
        p (dict): The parameters by name (``'/le1/W'``, ...).
        x: Inputs, (B, n_in).
        eps: Standard normal noise, (k*B, L), the k copies sample-major as
            ``vae.model.sample_reconstruction_loss`` draws it.
        act (Activation): The hidden activation, a value of
            :data:`KERNELS`.
        k (int): Samples of z per input.
        C (float): Weight of the KL term.

    Returns:
        tuple: ``(loss, reconstr, kl, cache)``: three scalars with the
        meaning of ``get_loss_func``'s reports, and what :func:`backward`
        needs.
    """
    batch = len(x)
    c = {'x': x, 'k': k, 'act': act}
    c['a1'] = _linear(dot, p, LE1, x)  # (B, n_h), pre-activation
    c['h1'] = act.forward(c['a1'])
    c['a2'] = _linear(dot, p, LE2, c['h1'])
    c['h2'] = act.forward(c['a2'])
    mu = c['mu'] = _linear(dot, p, LE3_MU, c['h2'])  # (B, L)
    ln_var = _linear(dot, p, LE3_LN_VAR, c['h2'])  # log(sigma**2)

    # F.gaussian on the k copies stacked sample-major (F.tile)
    mu_k = xp.tile(mu, (k, 1)) if k > 1 else mu  # (k*B, L)
    ln_var_k = xp.tile(ln_var, (k, 1)) if k > 1 else ln_var
    c['noise'], c['z'] = reparameterize(mu_k, ln_var_k, eps)  # (k*B, L)

    c['ad1'] = _linear(dot, p, LD1, c['z'])  # (k*B, n_h)
    c['d1'] = act.forward(c['ad1'])
    c['ad2'] = _linear(dot, p, LD2, c['d1'])
    c['d2'] = act.forward(c['ad2'])
    c['logits'] = _linear(dot, p, LD3, c['d2'])  # (k*B, n_in)

    # F.bernoulli_nll and F.gaussian_kl_divergence, each summed
    c['x_k'] = xp.tile(x, (k, 1)) if k > 1 else x  # (k*B, n_in)
    c['var'] = xp.exp(ln_var)  # (B, L)
    reconstr, kl, loss = loss_terms(
        elbo.bernoulli_nll(c['x_k'], c['logits']).sum(),
        elbo.gaussian_kl(mu, ln_var, c['var']).sum(),
        _F32(1.0 / (k * batch)), _F32(1.0 / batch), _F32(C))
    return loss, reconstr, kl, c


def _linear_grad(dot, p, grads, name, gy, x, need_gx=True):
    # LinearFunction.backward: gW = gy.T x, gb = sum(gy, 0), gx = gy W
    xp = _xp(gy)
    dot(gy.T, x, out=grads['/%s/W' % name])
    xp.sum(gy, axis=0, out=grads['/%s/b' % name])
    return dot(gy, p['/%s/W' % name]) if need_gx else None


def backward(xp, dot, p, c, grads, g_rec, g_kl):
    """Gradients of ``g_rec * reconstr + g_kl * kl`` with respect to the
    parameters, written into ``grads`` (arrays by name, as ``p``).

    Args:
        xp, dot, p: As for :func:`forward`.
        c (dict): The cache :func:`forward` returned.
        grads (dict): Arrays to write the gradients into.
        g_rec, g_kl: The gradients of the loss with respect to the two
            terms (1 and C for ``loss = reconstr + C * kl``).
    """
    act_grad = c['act'].backward
    k, batch = c['k'], len(c['x'])

    # d/dlogits of sum(softplus(y) - x * y) / (k * B)
    g = _F32(1.0 / (k * batch)) * g_rec
    gy = bernoulli_nll_grad(c['logits'], c['x_k'], g)  # (k*B, n_in)
    gh = _linear_grad(dot, p, grads, LD3, gy, c['d2'])
    gh = _linear_grad(dot, p, grads, LD2, act_grad(c['ad2'], c['d2'], gh),
                      c['d1'])
    gz = _linear_grad(dot, p, grads, LD1, act_grad(c['ad1'], c['d1'], gh),
                      c['z'])  # (k*B, L)

    # F.gaussian's backward; for k > 1, F.tile's sums over the copies
    g_mu = gz
    g_ln_var = noise_grad(gz, c['noise'])
    if k > 1:
        shape = (k, batch, 1, gz.shape[1])  # (k, B, 1, L)
        g_mu = g_mu.reshape(shape).sum(axis=(0, 2))  # (B, L)
        g_ln_var = g_ln_var.reshape(shape).sum(axis=(0, 2))

    # F.gaussian_kl_divergence's backward, added first
    g_half = _F32(0.5) * (_F32(1.0 / batch) * g_kl)
    g_mu, g_ln_var = gaussian_kl_grad(g_mu, g_ln_var, c['mu'], c['var'],
                                      g_half)

    gh = _linear_grad(dot, p, grads, LE3_MU, g_mu, c['h2'])
    gh += _linear_grad(dot, p, grads, LE3_LN_VAR, g_ln_var, c['h2'])
    gh = _linear_grad(dot, p, grads, LE2, act_grad(c['a2'], c['h2'], gh),
                      c['h1'])
    _linear_grad(dot, p, grads, LE1, act_grad(c['a1'], c['h1'], gh), c['x'],
                 need_gx=False)


# -- the function node --------------------------------------------------------

def unsupported_reason(model, device=None):
    """Why the fused loss cannot compute ``model``'s loss, or None; given a
    ``device``, why the fast path (this loss and
    :class:`vae.kernels.adam.FlatAdam`, CPU only) cannot train it there.
    """
    if model.activation not in KERNELS:
        return ('the fused loss implements the activations %s, not %r'
                % (', '.join(KERNELS), model.activation))
    if device is not None and not device_lib.is_cpu(device):
        return 'the fast path runs on the CPU only, not on %s' % device
    if any(p.dtype != _F32 or device is not None
           and not isinstance(p.array, numpy.ndarray)
           for p in model.params()):
        return ('the fused loss needs float32 parameters' if device is None
                else 'the fast path needs float32 NumPy parameters')
    return None


def loss_func(model, C=1.0, k=1):
    """``model.get_loss_func(C, k)``'s loss as one node, :class:`VAELoss`:
    the same value and reports from the same noise (bit for bit on the
    CPU), with a hand-written backward; ``model.get_loss_func(C, k,
    fused=True)`` returns it."""
    k = sample_count(k)
    reason = unsupported_reason(model)
    if reason:
        raise ValueError('the fused loss: %s' % reason)
    names, params = ordered_params(model)
    params = tuple(params)
    act = KERNELS[model.activation]  # looked up once

    def lf(x):
        if isinstance(x, chainer.Variable):
            x = x.array  # data: no gradient flows to it
        # model.xp at each call: the model may have moved since
        loss, reconstr, kl = VAELoss(
            model.xp, names, act, C, k).apply((x,) + params)
        chainer.report(
            {'loss': loss, 'reconstr': reconstr, 'kl': kl}, observer=model)
        return loss

    return lf


class VAELoss(function_node.FunctionNode):
    """The article's negative ELBO as a single function node.

    Inputs are ``x`` (B, n_in) followed by the parameters of
    :class:`vae.model.VAE` in the order of ``names``
    (:func:`vae.kernels.adam.param_names`); outputs are ``loss``,
    ``reconstr`` and ``kl``, three float32 scalars with the meaning of
    :meth:`vae.model.VAE.get_loss_func`. The arithmetic is :func:`forward`
    and :func:`backward`. Backward gives the parameters' gradients (not the
    data's) and is not itself differentiable (no double backprop). The
    gradients come back as views of one flat float32 array, in input order,
    so that :class:`vae.kernels.adam.FlatAdam` uses them without a copy.

    Args:
        xp: The model's array module (its noise comes from there).
        names (sequence of str): Parameter names, e.g. ``'/le1/W'``.
        act (Activation): The hidden activation, a value of
            :data:`KERNELS`.
        C (float): Weight of the KL term.
        k (int): Number of samples of z per input.
    """

    def __init__(self, xp, names, act, C, k):
        self._xp = xp
        self._names = tuple(names)
        self._act = act
        self._C = C
        self._k = k

    def forward(self, inputs):
        xp, x = self._xp, inputs[0]  # (B, n_in)
        self._p = dict(zip(self._names, inputs[1:]))
        # the draws F.gaussian makes on the k copies stacked sample-major
        eps = device_lib.standard_normal(
            xp, (self._k * len(x), self._p['/%s/b' % LE3_MU].size),
            x.dtype)  # (k*B, L)
        loss, reconstr, kl, self._cache = forward(
            xp, xp.dot, self._p, x, eps, self._act, self._k, self._C)
        return tuple(xp.asarray(v, dtype=x.dtype)
                     for v in (loss, reconstr, kl))

    def backward(self, indexes, grad_outputs):
        g_loss, g_rec, g_kl = (None if g is None else g.array
                               for g in grad_outputs)
        # loss = reconstr + C * kl
        g_rec = _sum_present(g_loss, g_rec)
        g_kl = _sum_present(
            None if g_loss is None else _F32(self._C) * g_loss, g_kl)
        _, views = flat_buffer(self._xp, [self._p[name].shape
                                          for name in self._names],
                               zeros=False)  # backward writes every one
        grads = dict(zip(self._names, views))
        backward(self._xp, self._xp.dot, self._p, self._cache, grads, g_rec,
                 g_kl)
        return (None,) + tuple(  # x, then the parameters
            chainer.Variable(grads[name]) if i in indexes else None
            for i, name in enumerate(self._names, 1))


def _sum_present(a, b):
    """a + b where either may be None (no gradient); zero if both are."""
    if a is None and b is None:
        return _F32(0)
    if a is None or b is None:
        return b if a is None else a
    return a + b
