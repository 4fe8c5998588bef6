"""Adam on flat buffers, written once: its arithmetic, the buffers, and the
CPU optimizer that runs it.

Kingma & Ba (2015), arXiv:1412.6980, Algorithm 1, with the bias
corrections folded into the step size, as ``chainer.optimizers.Adam``
computes it (``AdamRule.update_core_cpu``; weight decay, AMSGrad and
AdaBound off): ``m += (1 - beta1) (g - m)``, ``v += (1 - beta2) (g^2 - v)``,
``param -= eta alpha_t m / (sqrt(v) + eps)`` with
``alpha_t = alpha sqrt(1 - beta2^t) / (1 - beta1^t)``.

* :func:`adam_element` is that arithmetic, once. The CPU's compiled pass
  (:class:`FlatAdam`, numba) runs it on each element; :func:`adam_update`
  runs it on whole arrays, for the CUDA-graph step, whose one Adam kernel
  (``vae_adam`` of :mod:`vae.kernels.elementwise`, C) is tested against it.
* :class:`FlatBuffers` holds a model's parameters, gradients and moments as
  views of four flat float32 buffers, for :class:`FlatAdam` (NumPy) and the
  CUDA-graph step (CuPy).
* :class:`FlatAdam` is ``chainer.optimizers.Adam`` updating every parameter
  in one compiled pass over those buffers, bit for bit as Chainer's.
"""
import chainer
import numpy

_F32 = numpy.float32


def param_names(link):
    """Names of a link's parameters in the fused code's fixed order.

    ``Link.namedparams`` iterates over sets, whose order changes between
    processes; sorting makes the fused node's inputs, its flat gradient
    buffer and the flat buffers of Adam agree.
    """
    return sorted(name for name, _ in link.namedparams())


def ordered_params(link):
    """``(names, params)``: :func:`param_names` and the parameters of those
    names, in that order."""
    names = param_names(link)
    named = dict(link.namedparams())
    return names, [named[name] for name in names]


# -- the arithmetic -----------------------------------------------------------

def adam_element(p, g, m, v, one_minus_beta1, one_minus_beta2, eps, alpha_t,
                 neg_eta):
    """One Adam update of a parameter ``p`` with gradient ``g`` and moments
    ``m``, ``v``: the new ``(p, m, v)``. The factors are float32, as Chainer's
    Python floats become when they meet a float32 array; ``alpha_t`` is
    rounded to float32 once from its float64 value. Takes scalars (the
    compiled CPU pass) or arrays (:func:`adam_update`)."""
    m = m + one_minus_beta1 * (g - m)
    v = v + one_minus_beta2 * (g * g - v)
    p = p + neg_eta * (alpha_t / (numpy.sqrt(v) + eps) * m)
    return p, m, v


#: The order of Adam's hyperparameters in the array :func:`adam_update` reads.
ADAM_HYPERPARAMS = ('alpha', 'beta1', 'beta2', 'eps', 'eta')


def adam_hyperparams(hyperparam):
    """The float64 values of ``hyperparam`` (``chainer.optimizers.Adam``'s)
    in the order :func:`adam_update` reads them (:data:`ADAM_HYPERPARAMS`)."""
    return numpy.array([getattr(hyperparam, name)
                        for name in ADAM_HYPERPARAMS], dtype=numpy.float64)


def adam_step_count(t, keep=None):
    """Advance Adam's step count ``t`` (a () float64 array) by one, or by
    ``keep`` (a () bool array: not where the update is skipped)."""
    t += 1 if keep is None else keep


def adam_update(xp, param, grad, m, v, t, hyper, keep=None):
    """:func:`adam_element` on flat float32 buffers, in place, with the step
    count ``t`` (a () float64 array, already advanced by
    :func:`adam_step_count`) and the hyperparameters (a (5,) float64 array,
    :func:`adam_hyperparams`) read from arrays, so that a replayed CUDA graph
    counts for itself and follows a schedule such as
    ``ExponentialShift('alpha')``. ``alpha_t`` is computed in float64, as
    Chainer computes it in Python. Where ``keep`` (a () bool array) is False,
    nothing changes: the update of a non-finite loss is skipped."""
    alpha, beta1, beta2, eps, eta = (hyper[i] for i in range(5))  # () each
    alpha_t = alpha * xp.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    one_minus_beta1 = (1.0 - beta1).astype(_F32)
    one_minus_beta2 = (1.0 - beta2).astype(_F32)
    if keep is not None:  # every factor zero: m, v and param stay
        grad = xp.where(keep, grad, _F32(0))
        alpha_t = xp.where(keep, alpha_t, 0.0)
        one_minus_beta1 = one_minus_beta1 * keep.astype(_F32)
        one_minus_beta2 = one_minus_beta2 * keep.astype(_F32)
    param[...], m[...], v[...] = adam_element(
        param, grad, m, v, one_minus_beta1, one_minus_beta2,
        eps.astype(_F32), alpha_t.astype(_F32), (-eta).astype(_F32))


# -- the buffers --------------------------------------------------------------

def flat_buffer(xp, shapes, zeros=True):
    """A flat float32 buffer for arrays of the ``shapes`` in order (zeros,
    or left as allocated) and its views: ``(flat (N,), [a view of each
    shape])``. The layout of every flat buffer of the fused code
    (:class:`FlatBuffers`, the gradients of
    :class:`vae.kernels.fused.VAELoss`)."""
    flat = (xp.zeros if zeros else xp.empty)(
        sum(int(numpy.prod(shape)) for shape in shapes), dtype=_F32)
    views, start = [], 0
    for shape in shapes:
        size = int(numpy.prod(shape))
        views.append(flat[start:start + size].reshape(shape))
        start += size
    return flat, views


class FlatBuffers(object):
    """A link's parameters, their gradients and Adam's moments ``m`` and
    ``v`` as views of four flat float32 buffers, ``param``, ``grad``, ``m``
    and ``v`` (N,), in :func:`param_names` order.

    Args:
        xp: ``numpy`` or ``cupy``: where the buffers live.
        link (chainer.Link): The model; its parameters stay where they are
            until :meth:`bind`.
    """

    def __init__(self, xp, link):
        self.names, self.params = ordered_params(link)
        shapes = [p.shape for p in self.params]
        self.offsets = numpy.cumsum([0] + [p.size for p in self.params])
        #: per buffer, a view of each parameter's slice: 'param' -> [...]
        self.views = {}
        for key in ('param', 'grad', 'm', 'v'):
            flat, self.views[key] = flat_buffer(xp, shapes)
            setattr(self, key, flat)

    def by_name(self, key):
        """``{parameter name: its view}`` of the buffer ``key``."""
        return dict(zip(self.names, self.views[key]))

    def bind(self):
        """Make each parameter's array and its moments the views, keeping
        their values, where something (a setup, a deserializer) left them
        elsewhere."""
        for param, p_view, m_view, v_view in zip(
                self.params, self.views['param'], self.views['m'],
                self.views['v']):
            xp = chainer.backend.get_array_module(p_view)
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


# -- the CPU optimizer --------------------------------------------------------

_adam_kernel = None


def _compiled_adam_kernel():
    """:func:`adam_element` over flat buffers, compiled on first use
    (importing numba and compiling cost about a second, which only
    FlatAdam's users pay)."""
    global _adam_kernel
    if _adam_kernel is None:
        import numba

        # error_model='numpy' drops the zero-division check that would keep
        # LLVM from vectorizing; fastmath stays off so that every operation
        # rounds as NumPy's does.
        jit = numba.njit(cache=True, nogil=True, error_model='numpy')
        element = jit(adam_element)

        @jit
        def kernel(param, grad, m, v, one_minus_beta1, one_minus_beta2, eps,
                   alpha_t, neg_eta):
            for i in range(param.shape[0]):
                param[i], m[i], v[i] = element(
                    param[i], grad[i], m[i], v[i], one_minus_beta1,
                    one_minus_beta2, eps, alpha_t, neg_eta)

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
    :class:`FlatBuffers`, and an update is one compiled element-wise loop
    of :func:`adam_element` over them, so the parameters equal Chainer's
    Adam's bit for bit. Gradients that already are views of one flat array
    in this layout (as :class:`vae.kernels.fused.VAELoss` returns them) are
    used without a copy.

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
        if not all(isinstance(p.array, numpy.ndarray) and p.dtype == _F32
                   for p in link.params()):
            return self
        self._flat = FlatBuffers(numpy, link)
        for param, m, v in zip(self._flat.params, self._flat.views['m'],
                               self._flat.views['v']):
            param.update_rule.flat_m = m
            param.update_rule.flat_v = v
        self._flat.bind()
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
        flat = self._flat
        flat.bind()  # where a deserializer replaced arrays, keeping values
        grad = self._flat_grad()  # (N,)
        rules = [p.update_rule for p in flat.params]
        self.t += 1
        for rule in rules:
            rule.t += 1
        hp = self.hyperparam
        rules[0]._check_eps(_F32)
        # Python floats meet float32 arrays in Chainer's formulas, which
        # NumPy evaluates in float32: the same constants here.
        _compiled_adam_kernel()(
            flat.param, grad, flat.m, flat.v, _F32(1.0 - hp.beta1),
            _F32(1.0 - hp.beta2), _F32(hp.eps), _F32(rules[0].alpha_t),
            _F32(-hp.eta))

    def _can_update_flat(self):
        if self._flat is None or self._has_hooks or \
                self._loss_scale is not None:
            return False
        hp = self.hyperparam
        if hp.amsgrad or hp.adabound or hp.weight_decay_rate != 0:
            return False
        params = self._flat.params
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

    def _flat_grad(self):
        """The gradients as one (N,) array: the array they already are
        views of, if they lie in this layout, else a copy in the buffer."""
        flat = self._flat
        grads = [p.grad for p in flat.params]
        base = grads[0].base if grads[0] is not None else None
        if (base is not None and base.dtype == _F32 and base.ndim == 1
                and base.size == flat.grad.size and base.flags.c_contiguous):
            start = base.ctypes.data
            if all(g is not None and g.base is base and g.flags.c_contiguous
                   and g.ctypes.data == start + base.itemsize * int(offset)
                   for g, offset in zip(grads, flat.offsets)):
                return base
        for param, g, view in zip(flat.params, grads, flat.views['grad']):
            if g is None:
                # GradientMethod.reallocate_cleared_grads: a missing
                # gradient counts as zeros
                view[...] = 0
                param.grad = view
            elif g is not view:
                view[...] = g
        return flat.grad
