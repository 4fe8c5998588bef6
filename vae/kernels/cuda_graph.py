"""The whole training step on a GPU as one CUDA graph, replayed each
iteration (``train.py --gpu N --cuda-graph``).

On a GPU, Chainer launches a hundred small kernels a step, each through Python,
and the GPU waits on Python: the plain path takes 5-6 ms a step at batch 100 on
an H200, where the matrix products need a few tens of microseconds. Here the
step (:class:`FusedStep`) computes what :func:`vae.kernels.fused.forward`,
:func:`vae.kernels.fused.backward` and :func:`vae.kernels.adam.adam_update`
compute (the CPU fast path's arithmetic), on fixed device buffers: the
matrix products through cuBLAS, each element-wise group one kernel of
:mod:`vae.kernels.elementwise` (Adam one kernel over the flat buffers), nothing
allocated. It is captured once as a CUDA graph of 53 launches at k = 1 (20
cuBLAS products, 33 CuPy kernels; 2 more gather the batch and its noise) and
replayed, one graph launch an iteration. A stand-alone probe of this design
measured 0.27 ms a step on an H200 (docs/gpu.md).

What the capture needs, and where it is done:

* CuPy refuses cuBLAS while a stream captures, so the products go through a
  cuBLAS handle of this module's, bound to the capturing stream with a
  fixed workspace: NVIDIA's bindings, ``nvmath-python``
  (:class:`vae.kernels.cublas.CublasDot`; ``pip install nvmath-python``,
  the ``gpu-graph`` extra).
* Memory allocated inside a capture must come from CUDA's stream-ordered
  allocator (:func:`vae.device.use_stream_ordered_memory`); the step
  allocates none itself (CuPy's reductions may take scratch from it).
* What changes between iterations lives in device memory the graph reads:
  the batch and the noise buffers, Adam's step count and hyperparameters
  (a schedule such as ``ExponentialShift('alpha')`` takes effect at the
  next replay), and the flag of the non-finite guard (:class:`FusedStep`).
* No host synchronization inside the graph: the graph sums the loss, the
  reconstruction and the KL on the device, and the updater reports their
  means once per epoch (``LogReport`` reads them then).

The non-finite guard. Inside the graph, a step whose loss is not finite
applies no update, and neither does any later step (the flag stays down);
the updater reads the flag at the end of each epoch and stops training with
the iteration of the first such loss. The weights, ``model.npz`` and the
snapshots therefore never hold a non-finite update.

The data. Where the training set is an array, it is copied to the device
once; at each epoch's start the updater draws the epoch's order of the
images and all of its noise, one call each, from the device's generator
seeded with (seed, epoch), and the graph gathers each batch and its noise
itself (:class:`vae.train.graph_updater.GraphUpdater`): a resumed run
equals an uninterrupted one, and between two replays only Python's
counters run. A dataset read on the host (dynamic binarization) is copied
in batch by batch, with the plain GPU path's noise.
"""
import chainer
import numpy

from vae import device as device_lib
from vae.kernels import adam
from vae.kernels.cublas import cublas_reason
from vae.kernels import elementwise as kernels
from vae.kernels import fused
from vae.model import LAYERS

_F32 = numpy.float32


def unsupported_reason(model, device):
    """Why the graph path cannot train ``model`` on ``device``, or None."""
    if device_lib.is_cpu(device):
        return 'the CUDA-graph path needs a GPU'
    reason = fused.unsupported_reason(model)
    if reason:
        return reason
    with chainer.using_device(device):  # a handle belongs to a device
        return cublas_reason()


class FusedStep(object):
    """One training step of the article's VAE on fixed device buffers.

    At construction the model's parameters become views of one flat buffer
    ``P``, and the optimizer's Adam moments views of ``M`` and ``V``, so
    that Chainer's snapshots, ``model.npz`` and the Evaluator see the
    graph's weights without copies. :meth:`run` reads the batch ``x`` and the
    noise ``eps`` and updates everything in place.

    The step is :func:`vae.kernels.fused.forward`,
    :func:`vae.kernels.fused.backward` and
    :func:`vae.kernels.adam.adam_update`, operation for operation, with each
    element-wise group one kernel of :mod:`vae.kernels.elementwise` (an
    activation, its gradient, the sample, each term of the loss, their
    gradients, Adam over the flat buffers) writing into a buffer allocated
    here: a run allocates nothing, so its capture holds
    kernel and cuBLAS nodes only.

    Args:
        model (vae.model.VAE): On the device, float32.
        optimizer (chainer.optimizers.Adam): Set up on ``model``; holds the
            step count and the moments for serialization.
        batchsize, k, C: The run's settings.
        dot: The matrix product (:class:`vae.kernels.cublas.CublasDot` on
            a GPU).
    """

    def __init__(self, model, optimizer, batchsize, k, C, dot):
        xp = model.xp
        self.xp, self.dot = xp, dot
        self._activation, self._k, self._C = model.activation, k, C
        self._optimizer = optimizer
        self._flat = adam.FlatBuffers(xp, model)
        self._params = self._flat.params
        self.P, self.G, self.M, self.V = (
            self._flat.param, self._flat.grad, self._flat.m, self._flat.v)
        self.bind()
        self.p = self._flat.by_name('param')
        self.grads = self._flat.by_name('grad')
        n_in, n_latent = model.n_in, model.n_latent
        self.x = xp.zeros((batchsize, n_in), dtype=_F32)  # (B, n_in)
        self.eps = xp.zeros((k * batchsize, n_latent), dtype=_F32)
        self.t = xp.zeros((), dtype=numpy.float64)  # Adam's steps
        # Adam's hyperparameters, read by the graph at each replay
        self.hyper = xp.zeros(len(adam.ADAM_HYPERPARAMS), numpy.float64)
        self._hyper_loaded = None  # their values in self.hyper
        self.keep = xp.ones((), dtype=bool)  # no non-finite loss yet
        self.iteration = xp.zeros((), dtype=numpy.int64)  # steps run
        self.first_bad = xp.full((), -1, dtype=numpy.int64)
        self.loss, self.reconstr, self.kl = (
            xp.zeros((), dtype=_F32) for _ in range(3))
        # their sums since reset_totals, in the order of TOTALS
        self.totals = xp.zeros(len(self.TOTALS), dtype=_F32)
        self.batch = xp.zeros((), dtype=numpy.int64)  # the epoch's next
        self.data = self.order = self.noise = None  # see gather_from
        self._kernels = kernels.build(xp)
        self._scratch(batchsize, k, C, n_in, n_latent, model.n_h)
        self.load_step_count()
        self.load_hyperparams()

    def _scratch(self, batch, k, C, n_in, n_latent, n_h):
        """Every buffer :meth:`run` writes, each an allocation of its own
        (CuPy copies a kernel's input that overlaps one of its outputs),
        and the views and constants it uses."""
        xp = self.xp
        rows = {'x': batch, 'z': k * batch}
        sizes = {'in': n_in, 'h': n_h, 'L': n_latent}
        layout = {  # name: (rows, columns)
            'a1': 'xh', 'h1': 'xh', 'a2': 'xh', 'h2': 'xh', 'mu': 'xL',
            'ln_var': 'xL', 'var': 'xL', 'kl_terms': 'xL', 'noise': 'zL',
            'z': 'zL', 'ad1': 'zh', 'd1': 'zh', 'ad2': 'zh', 'd2': 'zh',
            'logits': 'zin', 'nll': 'zin', 'g_logits': 'zin', 'g_d2': 'zh',
            'g_d1': 'zh', 'g_z': 'zL', 'g_noise': 'zL', 'g_mu_sum': 'xL',
            'g_ln_var_sum': 'xL', 'g_mu': 'xL', 'g_ln_var': 'xL',
            'g_h2': 'xh', 'g_h2_ln_var': 'xh', 'g_h1': 'xh'}
        self._b = {name: xp.zeros((rows[shape[0]], sizes[shape[1:]]),
                                  dtype=_F32)
                   for name, shape in layout.items()}
        self._b['rec_sum'] = xp.zeros((), dtype=_F32)
        self._b['kl_sum'] = xp.zeros((), dtype=_F32)
        # the k samples of a row, sample-major: (k, B, ...) views, which
        # broadcast against the (B, ...) arrays of the encoder and x
        self._by_sample = {
            name: array.reshape((k, batch) + array.shape[1:])
            for name, array in (('eps', self.eps),) + tuple(
                (n, self._b[n]) for n in ('noise', 'z', 'logits', 'nll',
                                          'g_logits', 'g_z', 'g_noise'))}
        # F.tile's backward sums the k copies over (k, B, 1, L)
        self._tile_shape = (k, batch, 1, n_latent)
        # the scalars of fused.forward and fused.backward, as they compute
        # them (float32, rounded once)
        self._rec_scale = _F32(1.0 / (k * batch))
        self._kl_scale = _F32(1.0 / batch)
        self._C32 = _F32(C)
        self._g_logits = _F32(1.0 / (k * batch)) * _F32(1)
        self._g_half = _F32(0.5) * (_F32(1.0 / batch) * _F32(C))

    def gather_from(self, data, batches):
        """Make :meth:`run` take its batch and noise itself, from device
        memory: ``x`` the rows ``order[b * B:(b + 1) * B]`` of ``data``
        (the training set, (N, n_in), on the device) and ``eps`` the b-th
        slice of :attr:`noise`, for the batch b = :attr:`batch`, which
        each run advances. The caller fills :attr:`order` (a permutation
        of the N rows) and :attr:`noise` (``batches`` slices of
        ``eps.shape``) at the start of each epoch and sets :attr:`batch`
        to 0."""
        xp = self.xp
        self.data = data
        self.order = xp.arange(len(data), dtype=numpy.int64)
        self.noise = xp.zeros((batches * len(self.eps), self.eps.shape[1]),
                              dtype=_F32)

    #: The reported values whose sums :attr:`totals` holds.
    TOTALS = ('loss', 'reconstr', 'kl')

    def reset_totals(self):
        """Start the sums of the reported values again (at an epoch's
        start)."""
        self.totals.fill(0)

    def means(self, n):
        """The reported values' means over the ``n`` steps since
        :meth:`reset_totals`, as device scalars: what
        ``chainer.reporter.Summary`` computes from the ``n`` values reported
        one by one (the same float32 sum, in the same order, divided by
        ``n``)."""
        return {name: self.totals[i] / n
                for i, name in enumerate(self.TOTALS)}

    def load_hyperparams(self):
        """Adam's hyperparameters from the optimizer into :attr:`hyper`,
        where they changed (a schedule changes them between steps; the
        graph reads them at each replay)."""
        values = adam.adam_hyperparams(self._optimizer.hyperparam)
        if self._hyper_loaded is None or \
                not numpy.array_equal(values, self._hyper_loaded):
            self.hyper[...] = self.xp.asarray(values)
            self._hyper_loaded = values

    def bind(self):
        """Make the parameters and Adam's moments views of the buffers again
        where something (a deserializer) replaced them, keeping values."""
        self._flat.bind()

    def load_step_count(self):
        """Adam's step count from the optimizer (after a resume)."""
        self.t[...] = self._optimizer.t

    def save_step_count(self):
        """Adam's step count into the optimizer (before a snapshot)."""
        t = int(device_lib.to_cpu(self.t))
        self._optimizer.t = t
        for param in self._params:
            param.update_rule.t = t

    def state(self):
        """The buffers a step changes for good (the rest is scratch)."""
        return [self.P, self.M, self.V, self.t, self.keep, self.iteration,
                self.first_bad, self.totals, self.batch]

    def _linear(self, name, h, out):
        # LinearFunction.forward: dot(x, W.T) into y, then y += b
        self.dot(h, self.p['/%s/W' % name].T, out=out)
        self.xp.add(out, self.p['/%s/b' % name], out=out)

    def _linear_grad(self, name, gy, x, gx=None):
        # LinearFunction.backward: gW = gy.T x, gb = sum(gy, 0), gx = gy W
        self.dot(gy.T, x, out=self.grads['/%s/W' % name])
        self.xp.sum(gy, axis=0, out=self.grads['/%s/b' % name])
        if gx is not None:
            self.dot(gy, self.p['/%s/W' % name], out=gx)

    def run(self):
        """Forward, backward and Adam, all on the device, into the buffers
        (what :func:`vae.kernels.fused.forward` and
        :func:`vae.kernels.fused.backward` compute, in their order)."""
        xp, K, b, s = self.xp, self._kernels, self._b, self._by_sample
        act, act_grad = (K[name] for name in
                         kernels.ACTIVATIONS[self._activation])
        le1, le2, le3_mu, le3_ln_var, ld1, ld2, ld3 = LAYERS
        if self.data is not None:  # this batch and its noise
            K['vae_take_rows'](self.data, self.order, self.batch,
                               numpy.int64(len(self.x)),
                               numpy.int64(self.x.shape[1]), self.x)
            K['vae_take_noise'](self.noise, self.batch,
                                numpy.int64(self.eps.size), self.eps)
        # forward
        self._linear(le1, self.x, b['a1'])
        act(b['a1'], b['h1'])
        self._linear(le2, b['h1'], b['a2'])
        act(b['a2'], b['h2'])
        self._linear(le3_mu, b['h2'], b['mu'])
        self._linear(le3_ln_var, b['h2'], b['ln_var'])
        K['vae_reparameterize'](b['mu'], b['ln_var'], s['eps'], s['noise'],
                                s['z'])
        self._linear(ld1, b['z'], b['ad1'])
        act(b['ad1'], b['d1'])
        self._linear(ld2, b['d1'], b['ad2'])
        act(b['ad2'], b['d2'])
        self._linear(ld3, b['d2'], b['logits'])
        K['vae_bernoulli_nll'](self.x, s['logits'], s['nll'])
        xp.sum(b['nll'], out=b['rec_sum'])
        K['vae_gaussian_kl'](b['mu'], b['ln_var'], b['var'], b['kl_terms'])
        xp.sum(b['kl_terms'], out=b['kl_sum'])
        # the reported values and their sums, the non-finite guard,
        # Adam's step count and the next batch
        K['vae_loss'](b['rec_sum'], b['kl_sum'], self._rec_scale,
                      self._kl_scale, self._C32, self.reconstr, self.kl,
                      self.loss, self.totals, self.keep, self.iteration,
                      self.first_bad, self.t, self.batch)
        # backward
        K['vae_bernoulli_nll_grad'](s['logits'], self.x, self._g_logits,
                                    s['g_logits'])
        self._linear_grad(ld3, b['g_logits'], b['d2'], b['g_d2'])
        act_grad(b['ad2'], b['d2'], b['g_d2'], b['g_d2'])
        self._linear_grad(ld2, b['g_d2'], b['d1'], b['g_d1'])
        act_grad(b['ad1'], b['d1'], b['g_d1'], b['g_d1'])
        self._linear_grad(ld1, b['g_d1'], b['z'], b['g_z'])
        K['vae_noise_grad'](b['g_z'], b['noise'], b['g_noise'])
        if self._k > 1:  # F.tile's backward: the sum of the k copies
            xp.sum(b['g_z'].reshape(self._tile_shape), axis=(0, 2),
                   out=b['g_mu_sum'])
            xp.sum(b['g_noise'].reshape(self._tile_shape), axis=(0, 2),
                   out=b['g_ln_var_sum'])
            g_mu, g_ln_var = b['g_mu_sum'], b['g_ln_var_sum']
        else:
            g_mu, g_ln_var = b['g_z'], b['g_noise']
        K['vae_gaussian_kl_grad'](g_mu, g_ln_var, b['mu'], b['var'],
                                  self._g_half, b['g_mu'], b['g_ln_var'])
        self._linear_grad(le3_mu, b['g_mu'], b['h2'], b['g_h2'])
        self._linear_grad(le3_ln_var, b['g_ln_var'], b['h2'],
                          b['g_h2_ln_var'])
        xp.add(b['g_h2'], b['g_h2_ln_var'], out=b['g_h2'])
        act_grad(b['a2'], b['h2'], b['g_h2'], b['g_h2'])
        self._linear_grad(le2, b['g_h2'], b['h1'], b['g_h1'])
        act_grad(b['a1'], b['h1'], b['g_h1'], b['g_h1'])
        self._linear_grad(le1, b['g_h1'], self.x)
        # Adam, one kernel over the flat buffers
        K['vae_adam'](self.G, self.t, self.hyper, self.keep, self.P, self.M,
                      self.V)


def warm_up_and_capture(device, stream, step, capture=True):
    """Run ``step`` once (which compiles every kernel) and capture it as a
    CUDA graph on ``stream``, then put back the state the step had before
    both; returns the replay (``step.run`` itself where not ``capture``).

    The state is saved before the warm-up: a capture records a step
    without running it, but the warm-up runs one, which is undone too.
    """
    saved = [buffer.copy() for buffer in step.state()]
    step.run()
    replay = (device_lib.capture(device, stream, step.run) if capture
              else step.run)
    for buffer, value in zip(step.state(), saved):
        buffer[...] = value
    return replay
