"""Evaluating a VAE: the ELBO, an importance-sampled log p(x), active units.

- Kingma & Welling (2014), arXiv:1312.6114: ``ELBO(x) = E_q[log p(x|z)] -
  KL(q(z|x) || p(z)) <= log p(x)`` (eq. 3), estimated with k reparameterized
  samples and the KL in closed form (eq. 7, Appendix B).
- Burda, Grosse & Salakhutdinov (2015), arXiv:1509.00519: ``log p(x) ~ log
  (1/K) sum_j p(x|z_j) p(z_j) / q(z_j|x)``, z_j ~ q(z|x) (eq. 8), whose
  expectation rises with K from the ELBO to log p(x) (Theorem 1; K = 5000
  in their section 5); active units, the latent dimensions u with
  Cov_x(E_q[u]) > 0.01 (section 5.2).

On continuous pixels, as the article trains, the Bernoulli "log p(x|z)" is a
negative cross-entropy, not a normalized density: such numbers compare only
with others computed the same way, not with binarized-MNIST figures.

Noise. By default it is the training loss's: drawn from the model's device
generator (:func:`vae.device.standard_normal`; seed it with
:func:`vae.device.seed`), through ``F.gaussian``, one stream over all
batches; with the same seed, data and ``batchsize``, :func:`elbo` sees the
noise ``model.get_loss_func(C=1, k=k)`` would. Given a ``seed``, the
functions instead restart the generator before each batch from (seed, part,
batch index) (:func:`batch_seed`; part 0 is the ELBO, 1 is log p(x)), so that
an evaluation split over processes (:func:`evaluate_share` on each part,
then :func:`combine`) equals the same evaluation in one process exactly.
"""
import math
import time

import chainer
import chainer.functions as F
import numpy
from tqdm import tqdm

from vae import device as device_lib
from vae import parallel
from vae import watchdog
from vae.kernels import elbo as terms
from vae.kernels.elbo import log_normal_diag, log_standard_normal  # NOQA: F401
from vae.eval.inference import device_batches, inference_mode

#: Importance samples per image of Burda et al. (2015), Table 1.
DEFAULT_IW_SAMPLES = 5000
#: Importance samples decoded per pass and image; a pass decodes
#: ``chunk * batchsize`` latent codes.
DEFAULT_CHUNK = 100
#: Images per pass.
DEFAULT_BATCHSIZE = 100
#: Burda et al. (2015), section 5.2.
ACTIVE_UNIT_THRESHOLD = 0.01

def log_bernoulli(x, logits):
    """log p(x|z) of a Bernoulli decoder: (..., D) logits, and pixels broadcast
    against them, -> (...) (:func:`vae.kernels.elbo.bernoulli_nll`)."""
    return -terms.bernoulli_nll(x, logits).sum(axis=-1)


def kl_standard_normal(mu, ln_var):
    """KL(N(mu, diag(exp(ln_var))) || N(0, I)) in closed form: (..., L)
    -> (...) (:func:`vae.kernels.elbo.gaussian_kl`)."""
    return terms.gaussian_kl(mu, ln_var).sum(axis=-1)


def sample_q(model, mu, ln_var, n):
    """``n`` reparameterized draws of z ~ q(z|x) for each of the (B, L) rows
    of ``mu`` and ``ln_var``: (n, B, L). Drawn sample-major, as
    ``get_loss_func(k=n)`` draws them; consecutive calls continue one
    stream."""
    xp = chainer.backend.get_array_module(mu)
    shape = (n,) + mu.shape  # (n, B, L)
    eps = device_lib.standard_normal(model.xp, shape, mu.dtype)
    return F.gaussian(xp.broadcast_to(mu, shape),
                      xp.broadcast_to(ln_var, shape), eps=eps).array


def log_importance_weights(model, x, mu, ln_var, n):
    """log p(x|z) + log p(z) - log q(z|x) for ``n`` draws per image of the
    (B, D) images ``x`` with encodings ``mu``, ``ln_var``: float64 (n, B), on
    the model's device. The densities are evaluated in float64 at the very
    float32 z that was decoded, so that the prior and proposal terms, which
    nearly cancel, lose no digits."""
    batchsize, n_latent = mu.shape
    with inference_mode():
        z = sample_q(model, mu, ln_var, n)  # (n, B, L)
        logits = model.decode(z.reshape(n * batchsize, n_latent),
                              sigmoid=False).array  # (n*B, D)
    logits = logits.reshape(n, batchsize, -1)  # (n, B, D)
    log_px_z = log_bernoulli(x, logits).astype(numpy.float64)  # (n, B)
    z = z.astype(numpy.float64)  # (n, B, L)
    return (log_px_z + log_standard_normal(z)
            - log_normal_diag(z, mu.astype(numpy.float64),
                              ln_var.astype(numpy.float64)))


def batch_seed(seed, part, batch):
    """The seed of the noise of batch ``batch`` of part ``part`` (0: the
    ELBO, 1: log p(x)) of an evaluation seeded per batch; 32 bits."""
    return device_lib.derive_seed(seed, part, batch, bits=32)


def elbo(model, x, k=10, batchsize=DEFAULT_BATCHSIZE, encoded=None,
         seed=None):
    """The negative ELBO of ``model.get_loss_func(C=1, k=k)`` over the
    (N, D) images ``x``, in ``batchsize`` images a pass: a dict of floats,
    ``loss``, ``reconstr`` and ``kl``, in nats per image. ``encoded`` is
    ``(mu, ln_var)`` of all of ``x`` (:func:`encode`), where the caller has
    it; ``seed`` draws the noise per batch (module docstring)."""
    return _elbo_means(_elbo_sums(model, x, k, batchsize, encoded, seed),
                       len(x))


def _elbo_sums(model, x, k, batchsize, encoded=None, seed=None,
               first_batch=0):
    """``[(reconstruction, kl), ...]``: the ELBO's two terms summed over
    the images of each batch (float64), batch by batch; ``first_batch`` is
    the index of x's first batch in the whole data (for ``seed``)."""
    _check_positive(k=k, batchsize=batchsize)
    sums = []
    for i, (xb, mu, ln_var) in enumerate(
            _encoded_batches(model, x, batchsize, encoded)):
        _reseed(model, seed, 0, first_batch + i)
        watchdog.progress()  # for the watchdog of --rank-timeout
        with inference_mode():
            z = sample_q(model, mu, ln_var, k)  # (k, B, L)
            logits = model.decode(z.reshape(-1, z.shape[-1]),
                                  sigmoid=False).array  # (k*B, D)
        logits = logits.reshape(k, len(xb), -1)  # (k, B, D)
        sums.append((
            -float(log_bernoulli(xb, logits).sum(dtype=numpy.float64)) / k,
            float(kl_standard_normal(mu, ln_var).sum(dtype=numpy.float64))))
    return sums


def _elbo_means(sums, n):
    """:func:`elbo`'s result from the sums of all batches, in order."""
    reconstr = kl = 0.0
    for r, d in sums:  # one after the other, as they were computed
        reconstr += r
        kl += d
    return {'loss': (reconstr + kl) / n, 'reconstr': reconstr / n,
            'kl': kl / n}


def log_likelihood(model, x, K=DEFAULT_IW_SAMPLES, chunk=DEFAULT_CHUNK,
                   batchsize=DEFAULT_BATCHSIZE, progress=True, encoded=None,
                   seed=None, first_batch=0):
    """The importance-sampled log p(x) of each of the (N, D) images ``x``
    with ``K`` samples from q(z|x): float64 (N,), in nats.

    Samples are decoded ``chunk`` per image at a time, so memory does not
    grow with ``K``; the log-sum-exp runs on the CPU in float64, one weight
    at a time in sample order, so the result does not depend on ``chunk``
    (nor, on NumPy, does the noise: the chunks continue one stream);
    ``batchsize`` changes the noise. The estimate is biased low by O(1/K);
    where q(z|x) is narrower than the posterior's tails its weights are
    heavy-tailed, and rare draws overshoot by more than the spread over a
    few runs suggests. ``progress`` shows a bar; ``encoded`` and ``seed``
    are as for :func:`elbo`, and ``first_batch`` is the index of x's first
    batch in a data set evaluated in parts."""
    _check_positive(K=K, chunk=chunk, batchsize=batchsize)
    chunk = min(chunk, K)
    estimates = []
    with tqdm(total=len(x) * K, unit='sample', unit_scale=True,
              desc='log p(x)', disable=not progress) as bar:
        for i, (xb, mu, ln_var) in enumerate(
                _encoded_batches(model, x, batchsize, encoded)):
            _reseed(model, seed, 1, first_batch + i)
            acc = numpy.full(len(xb), -numpy.inf)  # (B,) running logsumexp
            for start in range(0, K, chunk):
                n = min(chunk, K - start)
                watchdog.progress()
                log_w = device_lib.to_cpu(
                    log_importance_weights(model, xb, mu, ln_var, n))
                acc = numpy.logaddexp.accumulate(
                    numpy.concatenate([acc[None], log_w]), axis=0)[-1]
                bar.update(n * len(xb))
            estimates.append(acc - math.log(K))
    return numpy.concatenate(estimates)


def _reseed(model, seed, part, batch):
    if seed is not None:
        device_lib.reseed(model.device, batch_seed(seed, part, batch))


def active_units(mu, threshold=ACTIVE_UNIT_THRESHOLD):
    """How many of the L latent dimensions are active: those whose mean
    code ``mu`` (N, L) varies over the data by more than ``threshold``."""
    xp = chainer.backend.get_array_module(mu)
    variance = xp.asarray(mu, dtype=numpy.float64).var(axis=0)  # (L,)
    return int((variance > threshold).sum())


def evaluate(model, x, k=10, iw_samples=DEFAULT_IW_SAMPLES,
             iw_chunk=DEFAULT_CHUNK, batchsize=DEFAULT_BATCHSIZE,
             progress=True, seed=None):
    """Every measure of this module on one data set, as a JSON-ready dict.

    Args:
        model (vae.model.VAE): The model (on any device).
        x: Images, shape (N, D).
        k (int): Samples per image of the ELBO.
        iw_samples (int): Importance samples per image of log p(x); 0 skips
            that estimate (its entries are then ``None``).
        iw_chunk (int): See ``chunk`` of :func:`log_likelihood`.
        batchsize (int): Images per pass.
        progress (bool): Show a progress bar for log p(x).
        seed (int): Noise per batch from this seed (module docstring);
            ``None`` draws from the generator as it stands.

    Returns:
        dict: ``n``, ``k``, ``neg_elbo``, ``reconstr``, ``kl``,
        ``iw_samples``, ``neg_log_likelihood`` (mean of -log p(x)) and
        ``neg_log_likelihood_sem`` (its standard error over the images),
        ``active_units``, ``n_latent``, and ``seconds`` per part.
    """
    share = evaluate_share(model, x, k=k, iw_samples=iw_samples,
                           iw_chunk=iw_chunk, batchsize=batchsize,
                           progress=progress, seed=seed)
    return combine([share], k=k, iw_samples=iw_samples,
                   n_latent=model.n_latent)


def evaluate_share(model, x, k=10, iw_samples=DEFAULT_IW_SAMPLES,
                   iw_chunk=DEFAULT_CHUNK, batchsize=DEFAULT_BATCHSIZE,
                   progress=True, seed=None, first_batch=0):
    """What :func:`evaluate` computes from one part of a data set, before
    it is combined with the other parts' (:func:`combine`).

    Args:
        As :func:`evaluate`'s; ``x`` is the part, whose first batch is
        batch ``first_batch`` of the whole data set.

    Returns:
        dict: ``elbo_sums`` (:func:`_elbo_sums`), ``log_px`` (float64
        array, or ``None`` where ``iw_samples`` is 0), ``mu`` (the encoder
        means, NumPy) and ``seconds`` per part.
    """
    _check_positive(batchsize=batchsize)
    seconds = {}
    start = time.perf_counter()
    encoded = encode(model, x, batchsize)  # once for every measure
    sums = _elbo_sums(model, x, k, batchsize, encoded, seed, first_batch)
    seconds['elbo'] = time.perf_counter() - start
    log_px = None
    if iw_samples:
        start = time.perf_counter()
        log_px = log_likelihood(model, x, K=iw_samples, chunk=iw_chunk,
                                batchsize=batchsize, progress=progress,
                                encoded=encoded, seed=seed,
                                first_batch=first_batch)
        seconds['log_likelihood'] = time.perf_counter() - start
    return {'elbo_sums': sums, 'log_px': log_px,
            'mu': device_lib.to_cpu(encoded[0]), 'seconds': seconds}


def combine(shares, k, iw_samples, n_latent):
    """:func:`evaluate`'s result from the :func:`evaluate_share` results of
    consecutive parts of a data set, in order.

    The sums of the ELBO are added batch after batch and the estimates of
    log p(x) and the codes are put together before any mean is taken, as
    one process takes them, so the result is the same to the last bit.
    ``seconds`` are the slowest part's.
    """
    sums = [s for share in shares for s in share['elbo_sums']]
    mu = numpy.concatenate([share['mu'] for share in shares])
    bound = _elbo_means(sums, len(mu))
    result = {'n': len(mu), 'k': k, 'neg_elbo': bound['loss'],
              'reconstr': bound['reconstr'], 'kl': bound['kl'],
              'iw_samples': iw_samples, 'neg_log_likelihood': None,
              'neg_log_likelihood_sem': None}
    if iw_samples:
        log_px = numpy.concatenate([share['log_px'] for share in shares])
        result['neg_log_likelihood'] = -float(log_px.mean())
        result['neg_log_likelihood_sem'] = (
            float(log_px.std(ddof=1) / math.sqrt(len(log_px)))
            if len(log_px) > 1 else None)
    result['active_units'] = active_units(mu)
    result['n_latent'] = n_latent
    result['seconds'] = {
        part: max(share['seconds'][part] for share in shares
                  if part in share['seconds'])
        for part in sorted({p for share in shares for p in share['seconds']})}
    return result


def encode(model, x, batchsize=DEFAULT_BATCHSIZE):
    """``(mu, ln_var)`` of every row of ``x``, (N, L) each, on the model's
    device, encoded in batches of ``batchsize``."""
    xp = model.xp
    parts = []
    for xb in device_batches(model, x, batchsize):
        with inference_mode():
            mu, ln_var = model.encode(xb)  # (B, L) each
        parts.append((mu.array, ln_var.array))
    return tuple(xp.concatenate(p) for p in zip(*parts))


def _encoded_batches(model, x, batchsize, encoded=None):
    """Yield ``(x, mu, ln_var)`` arrays per batch, on the model's device."""
    if encoded is None:
        encoded = encode(model, x, batchsize)
    mu, ln_var = encoded
    for i, xb in enumerate(device_batches(model, x, batchsize)):
        rows = slice(i * batchsize, i * batchsize + len(xb))
        yield xb, mu[rows], ln_var[rows]


def _check_positive(**values):
    for name, value in values.items():
        if int(value) != value or value < 1:
            raise ValueError('%s must be a positive integer, got %r'
                             % (name, value))
