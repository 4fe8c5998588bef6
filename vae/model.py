"""The article's VAE chain and its loss.

Kingma & Welling (2014), "Auto-Encoding Variational Bayes", arXiv:1312.6114:
a Gaussian encoder q(z|x) = N(mu(x), diag(exp(ln_var(x)))), a standard normal
prior p(z) = N(0, I) and a Bernoulli decoder p(x|z) whose logits come from an
MLP. The loss is the negative ELBO, with the expectation over q estimated by
k reparameterized samples (their eq. 7) and the KL term in closed form
(their Appendix B), weighted by C as in the article "Variational Autoencoder
徹底解説" (Qiita, 2017), whose public API this class keeps.

The weights start from the article's initializer, :class:`Xavier`: Glorot &
Bengio (2010), "Understanding the difficulty of training deep feedforward
neural networks", eq. 16: W ~ U(-a, a) with a = constant * sqrt(6 / (fan_in +
fan_out)), so that Var[W] = a**2 / 3 = constant**2 * 2 / (fan_in + fan_out).
The article takes it, with softplus, from Metzen's 2015 VAE tutorial.
"""
import math

import chainer
import chainer.functions as F
import chainer.links as L
import numpy
from chainer import backend, initializer

from vae import device as device_lib


def xavier_bound(fan_in, fan_out, constant=1.0):
    """Half-width ``a`` of the uniform distribution U(-a, a)."""
    return constant * math.sqrt(6.0 / (fan_in + fan_out))


class Xavier(initializer.Initializer):
    """Uniform Xavier/Glorot initializer with explicit fan-in and fan-out.

    It draws with the array module of the array it fills, so it works
    unchanged on NumPy and CuPy arrays.

    Args:
        fan_in (int): Number of inputs of the layer.
        fan_out (int): Number of outputs of the layer.
        constant (float): Scale of the bound (1 in the article).
        dtype: Data type the filled array must have (``None``: any float).
    """

    def __init__(self, fan_in, fan_out, constant=1, dtype=None):
        super(Xavier, self).__init__(dtype)
        if fan_in <= 0 or fan_out <= 0:
            raise ValueError(
                'Xavier needs positive fan_in and fan_out, got %r and %r'
                % (fan_in, fan_out))
        self.fan_in = fan_in
        self.fan_out = fan_out
        self.constant = constant

    @property
    def bound(self):
        return xavier_bound(self.fan_in, self.fan_out, self.constant)

    def __call__(self, array):
        if self.dtype is not None and array.dtype != self.dtype:
            raise ValueError(
                'Xavier(dtype=%s) cannot fill an array of dtype %s'
                % (numpy.dtype(self.dtype), array.dtype))
        xp = backend.get_array_module(array)
        a = self.bound
        array[...] = xp.random.uniform(-a, a, array.shape).astype(
            array.dtype, copy=False)


#: Activations a model file can name. The article's class default is tanh;
#: its published models used softplus.
ACTIVATIONS = {
    'tanh': F.tanh,
    'softplus': F.softplus,
    'relu': F.relu,
    'sigmoid': F.sigmoid,
    'elu': F.elu,
    'leaky_relu': F.leaky_relu,
}


def layer_sizes(n_in, n_latent, n_h):
    """``(name, n_inputs, n_outputs)`` of each linear layer of
    ``VAE(n_in, n_latent, n_h)``: the encoder's, then the decoder's. The
    fused loss of :mod:`vae.kernels.fused` takes the layers from here."""
    return (('le1', n_in, n_h), ('le2', n_h, n_h),
            ('le3_mu', n_h, n_latent), ('le3_ln_var', n_h, n_latent),
            ('ld1', n_latent, n_h), ('ld2', n_h, n_h), ('ld3', n_h, n_in))


#: Names of the linear layers, in the order of :func:`layer_sizes`.
LAYERS = tuple(name for name, _, _ in layer_sizes(1, 1, 1))


def activation_name(act_func):
    """The registry name of an activation function (or of a name)."""
    if isinstance(act_func, str):
        if act_func not in ACTIVATIONS:
            raise ValueError('unknown activation %r; choose one of %s'
                             % (act_func, ', '.join(sorted(ACTIVATIONS))))
        return act_func
    for name, func in ACTIVATIONS.items():
        if func is act_func:
            return name
    return None


def _linear(n_in, n_out):
    return L.Linear(n_in, n_out, initialW=Xavier(n_in, n_out))


class VAE(chainer.Chain):
    """Variational Autoencoder with two-layer MLP encoder and decoder.

    Args:
        n_in (int): Size of an input (784 for MNIST).
        n_latent (int): Size of the latent variable z.
        n_h (int): Width of the hidden layers.
        act_func (callable or str): Activation of the hidden layers, a
            function or a name from :data:`ACTIVATIONS`.
    """

    def __init__(self, n_in, n_latent, n_h, act_func=F.tanh):
        super(VAE, self).__init__()
        for name, value in (('n_in', n_in), ('n_latent', n_latent),
                            ('n_h', n_h)):
            if int(value) != value or value <= 0:
                raise ValueError('VAE: %s must be a positive integer, got %r'
                                 % (name, value))
        self.n_in, self.n_latent, self.n_h = int(n_in), int(n_latent), int(n_h)
        if isinstance(act_func, str):
            act_func = ACTIVATIONS[activation_name(act_func)]
        self.act_func = act_func
        with self.init_scope():
            # encoder le1, le2, le3_mu, le3_ln_var; decoder ld1, ld2, ld3
            for name, fan_in, fan_out in layer_sizes(n_in, n_latent, n_h):
                setattr(self, name, _linear(fan_in, fan_out))

    @property
    def activation(self):
        """Registry name of the activation (``None`` for a custom one)."""
        return activation_name(self.act_func)

    def forward(self, x, sigmoid=True):
        """Autoencode through the mean: decode(mu(x)) (the article's
        ``__call__``; Chainer 7 calls ``forward``)."""
        return self.decode(self.encode(x)[0], sigmoid)

    def encode(self, x):
        """Parameters of q(z|x).

        Args:
            x: Inputs, shape (B, n_in).

        Returns:
            tuple: ``(mu, ln_var)``, each (B, n_latent); ``ln_var`` is
            log(sigma**2).
        """
        h1 = self.act_func(self.le1(x))
        h2 = self.act_func(self.le2(h1))
        mu = self.le3_mu(h2)
        ln_var = self.le3_ln_var(h2)  # log(sigma**2)
        return mu, ln_var

    def decode(self, z, sigmoid=True):
        """Bernoulli means (``sigmoid=True``) or logits of p(x|z).

        Args:
            z: Latent codes, shape (B, n_latent).
            sigmoid (bool): Apply the sigmoid to the logits.

        Returns:
            chainer.Variable: shape (B, n_in).
        """
        h1 = self.act_func(self.ld1(z))
        h2 = self.act_func(self.ld2(h1))
        logits = self.ld3(h2)
        return F.sigmoid(logits) if sigmoid else logits

    def get_loss_func(self, C=1.0, k=1, fused=False):
        """The negative ELBO as a function of a batch.

        The body below is the reference: Chainer's own functions, as the
        article writes them. With ``fused=True`` the same loss comes as one
        function node with a hand-written backward,
        :func:`vae.kernels.fused.loss_func`, whose arithmetic
        (:func:`vae.kernels.fused.forward` and ``backward``) is Chainer's
        operation for operation: equal bit for bit on the CPU (the same
        loss, gradients and weights after training; ``tests/kernels``).
        Training on the CPU runs the fused loss by default (``--fast``);
        the reference runs with ``--no-fast``, on a GPU without
        ``--cuda-graph``, and for activations the fused loss does not
        implement (:func:`vae.kernels.fused.unsupported_reason`).

        Args:
            C (float): Weight of the KL term (1 gives the ELBO).
            k (int): Number of Monte Carlo samples of z per input.
            fused (bool): One fused node instead of Chainer's graph.

        Returns:
            callable: ``lf(x)`` -> scalar Variable, the reconstruction
            term averaged over k samples and the batch plus C times the
            batch-averaged KL. It reports ``loss``, ``reconstr`` and ``kl``
            (unweighted) with :func:`chainer.report`.
        """
        k = sample_count(k)
        if fused:
            from vae.kernels import fused as fused_lib
            return fused_lib.loss_func(self, C, k)

        def lf(x):
            mu, ln_var = self.encode(x)  # (B, L) each
            batchsize = len(mu)
            reconstr = sample_reconstruction_loss(self, x, mu, ln_var, k)
            kl = F.gaussian_kl_divergence(mu, ln_var) / batchsize
            loss = reconstr + C * kl
            chainer.report(
                {'loss': loss, 'reconstr': reconstr, 'kl': kl}, observer=self)
            return loss

        return lf


def sample_count(k):
    """``k``, the number of samples of z per input, as an int; a
    ``ValueError`` where it is not a positive integer."""
    if int(k) != k or k < 1:
        raise ValueError('k must be a positive integer, got %r' % (k,))
    return int(k)


def sample_reconstruction_loss(model, x, mu, ln_var, k):
    """Bernoulli NLL of x under k reparameterized samples, averaged.

    Equals the article's loop ``sum_l bernoulli_nll(x, decode(gaussian(mu,
    ln_var)), sigmoid=False) / (k * B)``, and draws the same noise in the
    same order, as one batched pass: the k copies are stacked sample-major.
    The noise comes from the generator of the model's device
    (:func:`vae.device.standard_normal`), as ``F.gaussian`` would draw it.
    """
    batchsize = len(mu)
    if k > 1:
        mu = F.tile(mu, (k, 1))  # (k*B, L), sample-major
        ln_var = F.tile(ln_var, (k, 1))  # (k*B, L)
        x_data = x.array if isinstance(x, chainer.Variable) else x
        x = model.xp.tile(x_data, (k, 1))  # (k*B, n_in)
    eps = device_lib.standard_normal(model.xp, ln_var.shape, ln_var.dtype)
    z = F.gaussian(mu, ln_var, eps=eps)  # (k*B, L)
    logits = model.decode(z, sigmoid=False)  # (k*B, n_in)
    return F.bernoulli_nll(x, logits) / (k * batchsize)
