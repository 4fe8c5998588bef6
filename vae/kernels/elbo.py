"""The terms of the ELBO on plain arrays, written once.

:meth:`vae.model.VAE.get_loss_func` computes the loss with Chainer's own
functions (``F.bernoulli_nll``, ``F.gaussian_kl_divergence``), as the
article does. The fused loss of :mod:`vae.kernels.fused` and the estimators of
:mod:`vae.eval.estimators` need the same terms on arrays; these functions are
those terms, each operation in the order and precision of Chainer 7.8.1's
CPU code (``functions/loss/vae.py``, ``functions/activation/softplus.py``),
so that the fused loss equals Chainer's bit for bit
(``tests/kernels/test_cpu.py``) and the estimators agree with it
(``tests/eval/test_evaluation.py``). They take NumPy or CuPy arrays.

Kingma & Welling (2014), arXiv:1312.6114: the Bernoulli decoder's
-log p(x|z) = sum_d softplus(y_d) - x_d y_d for logits y, and, for
q(z|x) = N(mu, diag(sigma^2)) and p(z) = N(0, I), the closed-form
KL(q || p) = sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1) / 2
(their Appendix B).
"""
import math

import chainer

_LOG_2PI = math.log(2.0 * math.pi)


def softplus(a):
    """log(1 + exp(a)) elementwise, as ``F.softplus`` computes it on the CPU:
    ``fmax(a, 0) + log1p(exp(-|a|))``, which no large ``a`` overflows."""
    xp = chainer.backend.get_array_module(a)
    # abs, then in place: NumPy's abs is vectorized where fabs is not, and
    # fmax against an array of zeros is faster than against the scalar 0
    t = xp.abs(a)
    xp.negative(t, out=t)
    xp.exp(t, out=t)
    xp.log1p(t, out=t)
    h = xp.zeros_like(a)
    xp.fmax(a, h, out=h)
    h += t
    return h


def bernoulli_nll(x, logits):
    """-log p(x|z) per pixel, ``softplus(y) - x * y``, for logits ``y``.

    Args:
        x: Pixels in [0, 1], broadcastable to ``logits``.
        logits: Shape (..., D).

    Returns:
        Array of the shape of ``logits``.
    """
    nll = softplus(logits)
    nll -= x * logits
    return nll


def gaussian_kl(mu, ln_var, var=None):
    """KL(N(mu, exp(ln_var)) || N(0, 1)) per dimension, as
    ``F.gaussian_kl_divergence`` computes it: ``(mu^2 + var - ln_var - 1)
    / 2``.

    Args:
        mu, ln_var: Shape (..., L); ``ln_var`` is log(sigma**2).
        var: ``exp(ln_var)``, where the caller has it already.

    Returns:
        Array of the shape of ``mu``.
    """
    xp = chainer.backend.get_array_module(mu)
    dtype = mu.dtype.type
    kl = mu * mu
    kl += xp.exp(ln_var) if var is None else var
    kl -= ln_var
    kl += dtype(-1)
    kl *= dtype(0.5)
    return kl


def log_normal_diag(z, mu, ln_var):
    """log N(z; mu, diag(exp(ln_var))), summed over the last axis.

    Args:
        z: Points, shape (..., L).
        mu: Means, broadcastable to ``z``.
        ln_var: log(sigma**2), broadcastable to ``z``.

    Returns:
        Array of shape (...).
    """
    xp = chainer.backend.get_array_module(z)
    return -0.5 * (_LOG_2PI + ln_var + (z - mu) ** 2 * xp.exp(-ln_var)).sum(
        axis=-1)


def log_standard_normal(z):
    """log N(z; 0, I), summed over the last axis: shape (..., L) -> (...)."""
    return -0.5 * (_LOG_2PI + z * z).sum(axis=-1)
