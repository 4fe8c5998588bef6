"""The article's loss, its gradients and Adam as plain array code, written
once for NumPy and CuPy.

:meth:`vae.model.VAE.get_loss_func` is the loss to read: Chainer builds it from
26 function nodes and backpropagates through 47. The fused paths compute the
same numbers in one pass of array operations over the model's parameters:

* :func:`forward` and :func:`backward` are the CPU fast path's loss node
  (:class:`vae.kernels.cpu.VAELoss`) and the GPU's fused step
  (:mod:`vae.kernels.cuda_graph`), with NumPy and with CuPy. Every operation is
  the one Chainer 7.8.1 performs on the CPU, in the same order and precision
  (``functions/connection/linear.py``, ``activation/*.py``,
  ``noise/gaussian.py``, ``array/tile.py``, ``loss/vae.py``, and
  ``chainer/_backprop.py`` for the order in which gradients are summed), so
  that on NumPy they equal the plain path bit for bit
  (``tests/kernels/test_cpu.py``); the CPU tests thereby check the GPU's
  formulas.
* :func:`adam` is Adam's update (Kingma & Ba 2015, arXiv:1412.6980,
  Algorithm 1, with ``chainer.optimizers.Adam``'s defaults and bias
  correction) on flat buffers whose step count is an array, so that a
  captured CUDA graph can replay it.

The matrix products go through ``dot(a, b, out=None)``, given by the
caller: ``numpy.dot`` on the CPU, cuBLAS on a GPU. ``a`` and ``b`` may be
transposed views (``W.T``) of C-contiguous arrays.
"""
import numpy

from vae.kernels import elbo
from vae.model import LAYERS

_F32 = numpy.float32

# The fused code names the layers of vae.model; a layer added there without
# its gradient here fails at import rather than training a different model.
LE1, LE2, LE3_MU, LE3_LN_VAR, LD1, LD2, LD3 = LAYERS


# -- element-wise kernels, each Chainer's CPU formula ------------------------
# Each backward takes the pre-activation a, the activation h and the
# gradient gh with respect to h, and returns the gradient with respect to a.

def _xp(a):
    import chainer
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


#: The hidden activations the fused code implements (a subset of
#: vae.model.ACTIVATIONS): name -> (forward, backward).
KERNELS = {
    'softplus': (elbo.softplus, softplus_grad),
    'tanh': (tanh, tanh_grad),
    'sigmoid': (sigmoid, sigmoid_grad),
    'relu': (relu, relu_grad),
}


# -- the loss ----------------------------------------------------------------

def _linear(dot, p, name, h):
    # LinearFunction.forward: dot(x, W.T) into y, then y += b
    y = dot(h, p['/%s/W' % name].T)
    y += p['/%s/b' % name]
    return y


def forward(xp, dot, p, x, eps, activation, k, C):
    """The negative ELBO of the batch ``x`` with the noise ``eps``.

    Args:
        xp: ``numpy`` or ``cupy``.
        dot: The matrix product (see the module docstring).
        p (dict): The parameters by name (``'/le1/W'``, ...).
        x: Inputs, (B, n_in).
        eps: Standard normal noise, (k*B, L), the k copies sample-major as
            ``vae.model.sample_reconstruction_loss`` draws it.
        activation (str): A name from :data:`KERNELS`.
        k (int): Samples of z per input.
        C (float): Weight of the KL term.

    Returns:
        tuple: ``(loss, reconstr, kl, cache)``: three scalars with the
        meaning of ``get_loss_func``'s reports, and what :func:`backward`
        needs.
    """
    act = KERNELS[activation][0]
    batch = len(x)
    c = {'x': x, 'k': k, 'activation': activation}
    c['a1'] = _linear(dot, p, LE1, x)  # (B, n_h), pre-activation
    c['h1'] = act(c['a1'])
    c['a2'] = _linear(dot, p, LE2, c['h1'])
    c['h2'] = act(c['a2'])
    mu = c['mu'] = _linear(dot, p, LE3_MU, c['h2'])  # (B, L)
    ln_var = _linear(dot, p, LE3_LN_VAR, c['h2'])  # log(sigma**2)

    # F.gaussian on the k copies stacked sample-major (F.tile)
    mu_k = xp.tile(mu, (k, 1)) if k > 1 else mu  # (k*B, L)
    ln_var_k = xp.tile(ln_var, (k, 1)) if k > 1 else ln_var
    c['noise'] = xp.exp(ln_var_k * _F32(0.5)) * eps  # (k*B, L)
    c['z'] = mu_k + c['noise']

    c['ad1'] = _linear(dot, p, LD1, c['z'])  # (k*B, n_h)
    c['d1'] = act(c['ad1'])
    c['ad2'] = _linear(dot, p, LD2, c['d1'])
    c['d2'] = act(c['ad2'])
    c['logits'] = _linear(dot, p, LD3, c['d2'])  # (k*B, n_in)

    # F.bernoulli_nll and F.gaussian_kl_divergence, each summed
    c['x_k'] = xp.tile(x, (k, 1)) if k > 1 else x  # (k*B, n_in)
    reconstr = _F32(1.0 / (k * batch)) * elbo.bernoulli_nll(
        c['x_k'], c['logits']).sum()
    c['var'] = xp.exp(ln_var)  # (B, L)
    kl = _F32(1.0 / batch) * elbo.gaussian_kl(mu, ln_var, c['var']).sum()
    loss = reconstr + _F32(C) * kl
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
    act_grad = KERNELS[c['activation']][1]
    k, batch = c['k'], len(c['x'])

    # d/dlogits of sum(softplus(y) - x * y) / (k * B): the softplus
    # branch plus the -x branch, as F.bernoulli_nll's graph sums them
    g = _F32(1.0 / (k * batch)) * g_rec
    gy = softplus_grad(c['logits'], None, g)  # (k*B, n_in)
    gy += c['x_k'] * -g
    gh = _linear_grad(dot, p, grads, LD3, gy, c['d2'])
    gh = _linear_grad(dot, p, grads, LD2, act_grad(c['ad2'], c['d2'], gh),
                      c['d1'])
    gz = _linear_grad(dot, p, grads, LD1, act_grad(c['ad1'], c['d1'], gh),
                      c['z'])  # (k*B, L)

    # F.gaussian's backward; for k > 1, F.tile's sums over the copies
    g_mu = gz
    g_ln_var = gz * c['noise']
    g_ln_var *= _F32(0.5)
    if k > 1:
        shape = (k, batch, 1, gz.shape[1])  # (k, B, 1, L)
        g_mu = g_mu.reshape(shape).sum(axis=(0, 2))  # (B, L)
        g_ln_var = g_ln_var.reshape(shape).sum(axis=(0, 2))

    # F.gaussian_kl_divergence's backward. Chainer's backprop reaches the
    # KL nodes first (by rank) and sums each variable's gradients as they
    # arrive, so the KL terms are added first; the order of a three-term
    # float sum matters.
    g_half = _F32(0.5) * (_F32(1.0 / batch) * g_kl)
    g_mu_kl = g_half * c['mu']  # mu * mu: one term for each factor
    g_mu = (g_mu_kl + g_mu_kl) + g_mu
    g_ln_var = (-g_half + c['var'] * g_half) + g_ln_var

    gh = _linear_grad(dot, p, grads, LE3_MU, g_mu, c['h2'])
    gh += _linear_grad(dot, p, grads, LE3_LN_VAR, g_ln_var, c['h2'])
    gh = _linear_grad(dot, p, grads, LE2, act_grad(c['a2'], c['h2'], gh),
                      c['h1'])
    _linear_grad(dot, p, grads, LE1, act_grad(c['a1'], c['h1'], gh), c['x'],
                 need_gx=False)


# -- flat buffers -------------------------------------------------------------

def flat_views(flat, shapes):
    """Views of consecutive slices of the 1-D array ``flat``, one of each
    shape in ``shapes``, in order (the fused code's layout of parameters,
    gradients and Adam's moments)."""
    views, start = [], 0
    for shape in shapes:
        size = int(numpy.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return views


def bind_to_buffers(params, param_views, m_views, v_views):
    """Make each parameter's array and its Adam moments ``m`` and ``v`` the
    given views of flat buffers, keeping their values, where something (a
    setup, a deserializer) left them elsewhere."""
    for param, p_view, m_view, v_view in zip(params, param_views, m_views,
                                             v_views):
        xp = _xp(p_view)
        if param.array is not p_view:
            p_view[...] = xp.asarray(param.array)
            param.array = p_view
        rule = param.update_rule
        if rule.state is None:
            rule._init_states(param)
        for key, view in (('m', m_view), ('v', v_view)):
            if rule.state[key] is not view:
                view[...] = xp.asarray(rule.state[key])
                rule.state[key] = view


# -- Adam -------------------------------------------------------------------

#: The order of Adam's hyperparameters in the array :func:`adam` reads.
ADAM_HYPERPARAMS = ('alpha', 'beta1', 'beta2', 'eps', 'eta')


def adam_hyperparams(hyperparam):
    """The float64 values of ``hyperparam`` (``chainer.optimizers.Adam``'s)
    in the order :func:`adam` reads them (:data:`ADAM_HYPERPARAMS`)."""
    return numpy.array([getattr(hyperparam, name)
                        for name in ADAM_HYPERPARAMS], dtype=numpy.float64)


def adam(xp, param, grad, m, v, t, hyper, keep=None):
    """One Adam step on flat float32 buffers, in place.

    ``AdamRule``'s update (weight decay, AMSGrad and AdaBound off):
    ``m += (1 - beta1) (g - m)``, ``v += (1 - beta2) (g^2 - v)``,
    ``param -= eta alpha_t m / (sqrt(v) + eps)`` with
    ``alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t)``. The step count
    ``t`` is a float64 array of shape () that this increments, and the
    hyperparameters are read from the array ``hyper``, so that a replayed
    graph counts for itself and follows a schedule (an extension such as
    ``ExponentialShift('alpha')`` that changes them between steps);
    ``alpha_t`` is computed in float64, as Chainer computes it in Python,
    and every other factor rounded to float32 once, as Chainer's Python
    floats are when they meet a float32 array.

    Args:
        xp: ``numpy`` or ``cupy``.
        param, grad, m, v: (N,) float32 buffers.
        t: () float64 array, the steps taken so far.
        hyper: (5,) float64 array, :func:`adam_hyperparams`' values.
        keep: () bool array or None; where False, nothing changes (the
            update of a non-finite loss is skipped in place).
    """
    adam_step_count(t, keep)
    adam_update(xp, param, grad, m, v, t, hyper, keep)


def adam_step_count(t, keep=None):
    """Advance Adam's step count ``t`` (a () float64 array) by one, or by
    ``keep`` (a () bool array: not where the update is skipped)."""
    t += 1 if keep is None else keep


def adam_update(xp, param, grad, m, v, t, hyper, keep=None):
    """:func:`adam` with the step count ``t`` already advanced
    (:func:`adam_step_count`): the update of the flat buffers alone, as the
    GPU's one Adam kernel computes it (:mod:`vae.kernels.elementwise`)."""
    alpha, beta1, beta2, eps, eta = (hyper[i] for i in range(5))  # () each
    if keep is not None:
        grad = xp.where(keep, grad, _F32(0))
    alpha_t = alpha * xp.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    if keep is not None:
        alpha_t = xp.where(keep, alpha_t, 0.0)
    one_minus_beta1 = (1.0 - beta1).astype(_F32)
    one_minus_beta2 = (1.0 - beta2).astype(_F32)
    if keep is not None:
        one_minus_beta1 = one_minus_beta1 * keep.astype(_F32)
        one_minus_beta2 = one_minus_beta2 * keep.astype(_F32)
    m += one_minus_beta1 * (grad - m)
    v += one_minus_beta2 * (grad * grad - v)
    step = alpha_t.astype(_F32) / (xp.sqrt(v) + eps.astype(_F32))
    step *= m
    step *= (-eta).astype(_F32)
    param += step
