"""Estimates of the memory a piece of work needs, checked against the
machine's before the work starts.

A size beyond the machine (``--n-hidden 100000000``, ``--k 1000000``, a
model file whose recorded sizes are absurd) would otherwise end in a
``MemoryError`` or in the kernel's OOM killer, after files were written.
The estimates count float32 arrays: the parameters (with their gradients
and Adam's two moments where training), and the activations of the
largest pass, each kept :data:`LIVE_COPIES` times (forward values,
gradients, temporaries). They are rough on purpose: they catch what cannot
fit, not what barely fits. They are checked against the physical memory of
the host, which also bounds what a GPU run stages there.
"""
import os

from vae.model import layer_sizes

FLOAT_BYTES = 4
#: Copies of a pass's activations alive at once, at most.
LIVE_COPIES = 3
#: Copies of the parameters a training run holds: the weights, their
#: gradients and Adam's two moments.
TRAINING_PARAMETER_COPIES = 4


class MemoryEstimateError(ValueError):
    """The work asked for needs more memory than the machine has."""


def machine_bytes():
    """The machine's physical memory in bytes, or ``None`` where the system
    does not say."""
    try:
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    except (AttributeError, ValueError, OSError):
        return None


def parameter_count(n_in, n_latent, n_h):
    """The number of weights and biases of ``VAE(n_in, n_latent, n_h)``."""
    return sum((fan_in + 1) * fan_out
               for _, fan_in, fan_out in layer_sizes(n_in, n_latent, n_h))


def pass_bytes(rows, n_in, n_latent, n_h):
    """The activations of one pass of ``rows`` latent codes through the
    encoder's output and the decoder."""
    return FLOAT_BYTES * LIVE_COPIES * rows * (2 * n_latent + 2 * n_h + n_in)


def model_bytes(n_in, n_latent, n_h, copies=1):
    """``copies`` of the parameters of ``VAE(n_in, n_latent, n_h)``."""
    return FLOAT_BYTES * copies * parameter_count(n_in, n_latent, n_h)


def training_bytes(n_in, n_latent, n_h, batchsize, k):
    """A training step: the parameters, gradients and Adam's moments, and
    the ``batchsize * k`` decoded samples of a minibatch."""
    return (model_bytes(n_in, n_latent, n_h, TRAINING_PARAMETER_COPIES)
            + pass_bytes(batchsize * k, n_in, n_latent, n_h))


def evaluation_bytes(n_in, n_latent, n_h, batchsize, k, iw_chunk):
    """An evaluation: the parameters and the larger of its passes, the
    ELBO's ``batchsize * k`` samples or ``batchsize * iw_chunk`` importance
    samples (``iw_chunk`` 0: no importance sampling)."""
    return (model_bytes(n_in, n_latent, n_h)
            + pass_bytes(batchsize * max(k, iw_chunk), n_in, n_latent, n_h))


def gib(n_bytes):
    """``n_bytes`` in words (GiB, or MiB below one GiB)."""
    if n_bytes >= 1 << 30:
        return '%.1f GiB' % (n_bytes / float(1 << 30))
    return '%.0f MiB' % (n_bytes / float(1 << 20))


def check(need, what, fix, total=None):
    """Raise :class:`MemoryEstimateError` where ``need`` bytes exceed the
    machine's memory (``total``, by default :func:`machine_bytes`).

    Args:
        need (int): The estimate, in bytes.
        what (str): What needs it, for the message ("training with ...").
        fix (str): What to change, for the message.
    """
    total = machine_bytes() if total is None else total
    if total is not None and need > total:
        raise MemoryEstimateError(
            '%s needs about %s of memory, more than the %s of this machine; '
            '%s' % (what, gib(need), gib(total), fix))
