"""Fast CPU training of the article's VAE: one fused loss node, one flat Adam.

Chainer runs the loss of :meth:`vae.model.VAE.get_loss_func` as 26 forward and
47 backward function nodes, and its Adam as 12 NumPy passes per parameter
array; on two cores that Python and memory traffic costs about as much as the
matrix products themselves. This module keeps the maths and removes the
overhead:

* :class:`VAELoss` is one ``chainer.FunctionNode`` for the whole negative
  ELBO (Kingma & Welling 2014, arXiv:1312.6114, eq. 7 with the closed-form
  KL of their Appendix B): encoder, reparameterized sampling, decoder,
  Bernoulli NLL and KL, with a hand-written backward. Its arithmetic is
  :mod:`vae.kernels.fused` on NumPy, every operation Chainer's own in Chainer's
  order, and the noise is drawn with the same call, so on the CPU the loss
  and the gradients equal the plain path's bit for bit.
* :class:`FlatAdam` is ``chainer.optimizers.Adam`` whose parameters, moments
  and gradients live in contiguous float32 buffers, updated by one compiled
  element-wise pass (numba) with the arithmetic of ``AdamRule.update_core_cpu``
  (Kingma & Ba 2015, arXiv:1412.6980, Algorithm 1 with the bias corrections
  folded into ``alpha_t``), again bit for bit. Snapshots have Chainer's
  layout, so plain and fast runs can resume each other.

The fast path is CPU only; :func:`unsupported_reason` says when it does not
apply, and :func:`vae.train.trainer.training_path` picks the path.
"""
import chainer
import numpy
from chainer import function_node

from vae import device as device_lib
from vae.kernels import fused
from vae.kernels.fused import LE3_MU
from vae.model import ACTIVATIONS

_F32 = numpy.float32


def unsupported_reason(model, device=None):
    """Why the fast path cannot train ``model`` (on ``device``), or None.

    Args:
        model (vae.model.VAE): The model.
        device (chainer.backend.Device): Where it trains; ``None`` checks
            only where the parameters are.

    Returns:
        str: The reason, or ``None`` when the fast path applies.
    """
    if model.activation not in FUSED_ACTIVATIONS:
        return ('the fused loss implements the activations %s, not %r'
                % (', '.join(FUSED_ACTIVATIONS), model.activation))
    if device is not None and not device_lib.is_cpu(device):
        return 'the fast path runs on the CPU only, not on %s' % device
    if any(not isinstance(p.array, numpy.ndarray) or p.dtype != _F32
           for p in model.params()):
        return 'the fast path needs float32 NumPy parameters'
    return None


def param_names(link):
    """Names of a link's parameters in the fast path's fixed order.

    ``Link.namedparams`` iterates over sets, whose order changes between
    processes; sorting makes the fused node's inputs, its flat gradient
    buffer and :class:`FlatAdam`'s buffers agree.
    """
    return sorted(name for name, _ in link.namedparams())


def loss_func(model, C=1.0, k=1):
    """The fused equivalent of ``model.get_loss_func(C, k)``.

    Args:
        model (vae.model.VAE): A model whose activation is in
            :data:`FUSED_ACTIVATIONS`, on the CPU.
        C (float): Weight of the KL term.
        k (int): Number of Monte Carlo samples of z per input.

    Returns:
        callable: ``lf(x)`` -> scalar Variable, equal to the plain loss
        (same noise, same value); it reports ``loss``, ``reconstr`` and
        ``kl`` with :func:`chainer.report` like the plain one.
    """
    if int(k) != k or k < 1:
        raise ValueError('k must be a positive integer, got %r' % (k,))
    reason = unsupported_reason(model)
    if reason:
        raise ValueError('fast.loss_func: %s' % reason)
    names = param_names(model)
    params = dict(model.namedparams())
    params = tuple(params[name] for name in names)

    def lf(x):
        if isinstance(x, chainer.Variable):
            x = x.array  # data: no gradient flows to it
        loss, reconstr, kl = VAELoss(
            names, model.activation, C, k).apply((x,) + params)
        chainer.report(
            {'loss': loss, 'reconstr': reconstr, 'kl': kl}, observer=model)
        return loss

    return lf


#: Names of the activations the fused loss supports.
FUSED_ACTIVATIONS = tuple(fused.KERNELS)
assert set(FUSED_ACTIVATIONS) <= set(ACTIVATIONS)


class VAELoss(function_node.FunctionNode):
    """The article's negative ELBO as a single function node.

    Inputs are ``x`` (B, n_in) followed by the parameters of
    :class:`vae.model.VAE` in the order of ``names`` (see :func:`param_names`);
    outputs are ``loss``, ``reconstr`` and ``kl``, three float32 scalars with
    the meaning of :meth:`vae.model.VAE.get_loss_func`. The arithmetic is
    :func:`vae.kernels.fused.forward` and :func:`vae.kernels.fused.backward` on
    NumPy. Backward gives the parameters' gradients (not the data's) and is not
    itself differentiable (no double backprop). The gradients come back as
    views of one flat float32 array, in input order, so that :class:`FlatAdam`
    uses them without a copy.

    Args:
        names (sequence of str): Parameter names, e.g. ``'/le1/W'``.
        activation (str): A name from :data:`FUSED_ACTIVATIONS`.
        C (float): Weight of the KL term.
        k (int): Number of samples of z per input.
    """

    def __init__(self, names, activation, C, k):
        self._names = tuple(names)
        self._activation = activation
        self._C = C
        self._k = k

    def forward_cpu(self, inputs):
        x = inputs[0]  # (B, n_in)
        self._p = dict(zip(self._names, inputs[1:]))
        # the draws F.gaussian makes on the k copies stacked sample-major
        eps = device_lib.standard_normal(
            numpy, (self._k * len(x), self._p['/%s/b' % LE3_MU].size),
            x.dtype)  # (k*B, L)
        loss, reconstr, kl, self._cache = fused.forward(
            numpy, numpy.dot, self._p, x, eps, self._activation, self._k,
            self._C)
        return tuple(numpy.asarray(v, dtype=x.dtype)
                     for v in (loss, reconstr, kl))

    def backward(self, indexes, grad_outputs):
        g_loss, g_rec, g_kl = (None if g is None else g.array
                               for g in grad_outputs)
        # loss = reconstr + C * kl
        g_rec = _sum_present(g_loss, g_rec)
        g_kl = _sum_present(
            None if g_loss is None else _F32(self._C) * g_loss, g_kl)
        shapes = [self._p[name].shape for name in self._names]
        flat = numpy.empty(sum(self._p[name].size for name in self._names),
                           dtype=_F32)
        grads = dict(zip(self._names, fused.flat_views(flat, shapes)))
        fused.backward(numpy, numpy.dot, self._p, self._cache, grads, g_rec,
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


# -- Adam over flat buffers ---------------------------------------------------

_adam_kernel = None


def _compiled_adam_kernel():
    """The fused Adam pass, compiled on first use (importing numba and
    compiling cost about a second, which only FlatAdam's users pay)."""
    global _adam_kernel
    if _adam_kernel is None:
        import numba

        # error_model='numpy' drops the zero-division check that would keep
        # LLVM from vectorizing; fastmath stays off so that every operation
        # rounds as NumPy's does.
        @numba.njit(cache=True, nogil=True, error_model='numpy')
        def kernel(param, grad, m, v, one_minus_beta1, one_minus_beta2, eps,
                   alpha_t, neg_eta):
            for i in range(param.shape[0]):
                g = grad[i]
                # AdamRule.update_core_cpu, one element at a time:
                # m += (1 - beta1) * (grad - m)
                # v += (1 - beta2) * (grad * grad - v)
                # param += -eta * (alpha_t / (sqrt(v) + eps) * m)
                mi = m[i] + one_minus_beta1 * (g - m[i])
                vi = v[i] + one_minus_beta2 * (g * g - v[i])
                m[i] = mi
                v[i] = vi
                param[i] = param[i] + neg_eta * (
                    alpha_t / (numpy.sqrt(vi) + eps) * mi)

        _adam_kernel = kernel
    return _adam_kernel


class _FlatAdamRule(chainer.optimizers.adam.AdamRule):
    """``AdamRule`` whose moments are views of :class:`FlatAdam`'s buffers
    (``flat_m``, ``flat_v``) when it has them."""

    flat_m = flat_v = None
    has_hooks = False

    def init_state(self, param):
        super(_FlatAdamRule, self).init_state(param)  # zeros (and vhat)
        if self.flat_m is not None:
            self.flat_m[...] = 0
            self.flat_v[...] = 0
            self.state['m'] = self.flat_m
            self.state['v'] = self.flat_v

    def add_hook(self, hook, name=None, timing='auto'):
        super(_FlatAdamRule, self).add_hook(hook, name, timing)
        self.has_hooks = True


class FlatAdam(chainer.optimizers.Adam):
    """``chainer.optimizers.Adam`` updating all parameters in one pass.

    At setup, every parameter, gradient and Adam moment becomes a view of
    one contiguous float32 buffer each (sorted by parameter name), and an
    update is one compiled element-wise loop over them with the arithmetic
    of ``AdamRule.update_core_cpu``, so the parameters equal Chainer's Adam's
    bit for bit. Gradients that already are views of one flat array in this
    layout (as :class:`VAELoss` returns them) are used without a copy.

    Serialization is Chainer's (``t``, ``epoch`` and each parameter's ``t``,
    ``m`` and ``v``), so snapshots load into either optimizer. Whatever the
    flat pass does not implement falls back to Chainer's per-parameter
    update: parameters off the CPU or not float32, optimizer or rule hooks,
    loss scaling, disabled or individually tuned rules, AMSGrad, AdaBound
    and weight decay.

    Args: as ``chainer.optimizers.Adam``.
    """

    def __init__(self, *args, **kwargs):
        super(FlatAdam, self).__init__(*args, **kwargs)
        self._flat = None
        self._has_hooks = False

    def create_update_rule(self):
        return _FlatAdamRule(self.hyperparam)

    def setup(self, link):
        super(FlatAdam, self).setup(link)
        self._flat = None
        named = dict(link.namedparams())
        params = [named[name] for name in param_names(link)]
        if not all(isinstance(p.array, numpy.ndarray) and p.dtype == _F32
                   for p in params):
            return self
        sizes = [p.size for p in params]
        offsets = numpy.cumsum([0] + sizes)
        # parameters, gradients, m, v: (N,) each, and a view per parameter
        buffers = [numpy.zeros(offsets[-1], dtype=_F32) for _ in range(4)]
        views = [fused.flat_views(buf, [p.shape for p in params])
                 for buf in buffers]
        for param, m, v in zip(params, views[2], views[3]):
            param.update_rule.flat_m = m
            param.update_rule.flat_v = v
        self._flat = (params, buffers, views, offsets)
        self._bind()
        return self

    def add_hook(self, hook, name=None, timing='auto'):
        super(FlatAdam, self).add_hook(hook, name, timing)
        self._has_hooks = True

    def update(self, lossfun=None, *args, **kwds):
        """As ``Optimizer.update``: compute gradients if ``lossfun`` is
        given, then take one Adam step."""
        if lossfun is not None:
            # GradientMethod.update's handling of lossfun
            loss = lossfun(*args, **kwds)
            if getattr(self, '_use_cleargrads', True):
                self.target.cleargrads()
            else:
                self.target.zerograds()
            loss.backward(loss_scale=self._loss_scale)
            del loss
        if not self._can_update_flat():
            return super(FlatAdam, self).update()
        self._bind()
        params, (param, _, m, v), _, _ = self._flat
        grad = self._flat_grad()  # (N,)
        rules = [p.update_rule for p in params]
        self.t += 1
        for rule in rules:
            rule.t += 1
        hp = self.hyperparam
        rules[0]._check_eps(_F32)
        # Python floats meet float32 arrays in Chainer's formulas, which
        # NumPy evaluates in float32: the same constants here.
        _compiled_adam_kernel()(
            param, grad, m, v, _F32(1.0 - hp.beta1), _F32(1.0 - hp.beta2),
            _F32(hp.eps), _F32(rules[0].alpha_t), _F32(-hp.eta))

    def _can_update_flat(self):
        if self._flat is None or self._has_hooks or \
                self._loss_scale is not None:
            return False
        hp = self.hyperparam
        if hp.amsgrad or hp.adabound or hp.weight_decay_rate != 0:
            return False
        params = self._flat[0]
        t = params[0].update_rule.t
        for p in params:
            rule = p.update_rule
            # a rule's own hyperparameter attributes override the shared ones
            if (not rule.enabled or rule.has_hooks or rule.t != t
                    or len(vars(rule.hyperparam)) > 1
                    or not isinstance(p.array, numpy.ndarray)
                    or p.dtype != _F32):
                return False
        return True

    def _bind(self):
        """Makes parameters and moments views of the buffers again where
        something replaced them (e.g. a deserializer that made new arrays),
        keeping their values."""
        params, _, views, _ = self._flat
        fused.bind_to_buffers(params, views[0], views[2], views[3])

    def _flat_grad(self):
        """The gradients as one (N,) array: the array they already are
        views of, if they lie in this layout, else a copy in the buffer."""
        params, (_, grad, _, _), views, offsets = self._flat
        grads = [p.grad for p in params]
        base = grads[0].base if grads[0] is not None else None
        if (base is not None and base.dtype == _F32 and base.ndim == 1
                and base.size == grad.size and base.flags.c_contiguous):
            start = base.ctypes.data
            if all(g is not None and g.base is base and g.flags.c_contiguous
                   and g.ctypes.data == start + base.itemsize * int(offset)
                   for g, offset in zip(grads, offsets)):
                return base
        for param, g, view in zip(params, grads, views[1]):
            if g is None:
                # GradientMethod.reallocate_cleared_grads: a missing
                # gradient counts as zeros
                view[...] = 0
                param.grad = view
            elif g is not view:
                view[...] = g
        return grad
