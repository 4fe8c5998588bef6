"""The whole training step on a GPU as one CUDA graph, replayed each
iteration (``train.py --gpu N --cuda-graph``).

On a GPU, Chainer launches a hundred small kernels a step, each through
Python, and the GPU waits on Python: the plain path takes 5-6 ms a step at
batch 100 on an H200, where the matrix products need a few tens of
microseconds. Here the step is :func:`vae.kernels.fused.forward`, :func:`vae.kernels.fused
.backward` and :func:`vae.kernels.fused.adam` (the CPU fast path's arithmetic, on
CuPy) on fixed device buffers; it is captured once as a CUDA graph and
replayed, so that an iteration costs one graph launch plus copying the
batch and the noise into their buffers. A stand-alone probe of this design
measured 0.27 ms a step on an H200 (README, "GPU").

What the capture needs, and where it is done:

* CuPy refuses cuBLAS while a stream captures, so the products go through a
  cuBLAS handle of this module's, bound to the capturing stream with a
  fixed workspace: NVIDIA's bindings, ``nvmath-python``
  (:class:`CublasDot`; ``pip install nvmath-python``, the ``gpu-graph``
  extra).
* Memory allocated inside a capture must come from CUDA's stream-ordered
  allocator (:func:`vae.device.use_stream_ordered_memory`).
* What changes between iterations lives in device memory the graph reads:
  the batch and the noise buffers, Adam's step count and hyperparameters
  (a schedule such as ``ExponentialShift('alpha')`` takes effect at the
  next replay), and the flag of the non-finite guard (:class:`FusedStep`).
* No host synchronization inside the graph: the reported loss, reconstruction
  and KL are device scalars that ``LogReport`` averages on the device and
  reads once per epoch.

The non-finite guard. Inside the graph, a step whose loss is not finite
applies no update, and neither does any later step (the flag stays down);
the updater reads the flag at the end of each epoch and stops training with
the iteration of the first such loss. The weights, ``model.npz`` and the
snapshots therefore never hold a non-finite update.

The noise of each iteration is drawn as on the plain GPU path (the device's
generator, reseeded from (seed, iteration)) and copied into the graph's
buffer, so both paths see the same noise; they agree to float32 rounding.
"""
import chainer
import numpy

from vae import device as device_lib
from vae.kernels import cpu
from vae.kernels import fused
from vae.train.updater import NonFiniteLossError, Updater

_F32 = numpy.float32
#: Bytes of the cuBLAS workspace bound to the capturing stream.
WORKSPACE_BYTES = 32 << 20


def unsupported_reason(model, device):
    """Why the graph path cannot train ``model`` on ``device``, or None."""
    if device_lib.is_cpu(device):
        return 'the CUDA-graph path needs a GPU'
    if model.activation not in cpu.FUSED_ACTIVATIONS:
        return ('the fused step implements the activations %s, not %r'
                % (', '.join(cpu.FUSED_ACTIVATIONS), model.activation))
    if any(p.dtype != _F32 for p in model.params()):
        return 'the fused step needs float32 parameters'
    with chainer.using_device(device):  # a handle belongs to a device
        return cublas_reason()


def cublas_reason():
    """Why nvmath-python's cuBLAS cannot serve the current device, or None.

    Importing the bindings succeeds without a driver or a libcublas (they
    load the library lazily), so a handle is created and destroyed here:
    a broken install then falls back with a note, rather than failing at
    the first iteration.
    """
    try:
        from nvmath.bindings import cublas
    except ImportError:
        return ('the CUDA-graph path needs nvmath-python (pip install '
                'nvmath-python, or the extra .[gpu-graph])')
    try:
        handle = cublas.create()
    except Exception as e:  # cuBLASError, a missing library, no driver
        return ('nvmath-python cannot create a cuBLAS handle (%s: %s)'
                % (type(e).__name__, e))
    cublas.destroy(handle)
    return None


def _pointer(array):
    """Device address of ``array``'s first element."""
    return array.data.ptr


def _operand(a):
    """``(transposed, base)``: ``a`` is ``base`` or ``base.T`` with ``base``
    C-contiguous."""
    if a.flags.c_contiguous:
        return False, a
    if a.T.flags.c_contiguous:
        return True, a.T
    raise ValueError('dot needs C-contiguous operands or their transposes')


class CublasDot(object):
    """``dot(a, b, out=None)`` for float32 matrices through a cuBLAS handle
    of its own, bound to ``stream``, which a CUDA graph can capture.

    cuBLAS is column-major: a C-contiguous (r, c) array is, to it, the
    transposed (c, r) matrix with leading dimension c. So the row-major
    ``C = op(A) @ op(B)`` is the column-major ``C^T = op(B)^T @ op(A)^T``:
    ``sgemm(op_B, op_A, n, m, k, 1, B, ldb, A, lda, 0, C, n)`` with each
    leading dimension the base array's row length.
    """

    def __init__(self, xp, stream):
        from nvmath.bindings import cublas
        self._xp = xp
        self._cublas = cublas
        self._handle = cublas.create()
        cublas.set_stream(self._handle, stream.ptr)
        self._workspace = xp.empty(WORKSPACE_BYTES, dtype=numpy.uint8)
        cublas.set_workspace(self._handle, _pointer(self._workspace),
                             WORKSPACE_BYTES)
        # alpha = 1 and beta = 0, read from host memory at each call
        self._scalars = numpy.array([1.0, 0.0], dtype=_F32)
        self._one = self._scalars.ctypes.data
        self._zero = self._one + self._scalars.itemsize

    def __call__(self, a, b, out=None):
        (m, k), (k2, n) = a.shape, b.shape
        if k != k2:
            raise ValueError('dot: shapes %s and %s do not align'
                             % (a.shape, b.shape))
        transpose_a, base_a = _operand(a)
        transpose_b, base_b = _operand(b)
        if out is None:
            out = self._xp.empty((m, n), dtype=_F32)
        op_n, op_t = 0, 1  # CUBLAS_OP_N, CUBLAS_OP_T
        self._cublas.sgemm(
            self._handle, op_t if transpose_b else op_n,
            op_t if transpose_a else op_n, n, m, k, self._one,
            _pointer(base_b), base_b.shape[1], _pointer(base_a),
            base_a.shape[1], self._zero, _pointer(out), n)
        return out

    def __del__(self):
        handle = getattr(self, '_handle', None)
        if handle is not None:
            self._cublas.destroy(handle)


class FusedStep(object):
    """One training step of the article's VAE on fixed device buffers.

    At construction the model's parameters become views of one flat buffer
    ``P``, and the optimizer's Adam moments views of ``M`` and ``V``, so
    that Chainer's snapshots, ``model.npz`` and the Evaluator see the
    graph's weights without copies. :meth:`run` reads the batch ``x`` and the
    noise ``eps`` and updates everything in place.

    Args:
        model (vae.model.VAE): On the device, float32.
        optimizer (chainer.optimizers.Adam): Set up on ``model``; holds the
            step count and the moments for serialization.
        batchsize, k, C: The run's settings.
        dot: The matrix product (:class:`CublasDot` on a GPU).
    """

    def __init__(self, model, optimizer, batchsize, k, C, dot):
        xp = model.xp
        self.xp, self.dot = xp, dot
        self._activation, self._k, self._C = model.activation, k, C
        self._optimizer = optimizer
        named = dict(model.namedparams())
        self._names = cpu.param_names(model)
        self._params = [named[name] for name in self._names]
        size = sum(p.size for p in self._params)
        self.P, self.G, self.M, self.V = (
            xp.zeros(size, dtype=_F32) for _ in range(4))
        self._views = {
            key: fused.flat_views(buf, [p.shape for p in self._params])
            for key, buf in (('P', self.P), ('G', self.G), ('M', self.M),
                             ('V', self.V))}
        self.bind()
        self.p = dict(zip(self._names, self._views['P']))
        self.grads = dict(zip(self._names, self._views['G']))
        n_in, n_latent = model.n_in, model.n_latent
        self.x = xp.zeros((batchsize, n_in), dtype=_F32)  # (B, n_in)
        self.eps = xp.zeros((k * batchsize, n_latent), dtype=_F32)
        self.t = xp.zeros((), dtype=numpy.float64)  # Adam's steps
        # Adam's hyperparameters, read by the graph at each replay
        self.hyper = xp.zeros(len(fused.ADAM_HYPERPARAMS), numpy.float64)
        self._hyper_loaded = None  # their values in self.hyper
        self.keep = xp.ones((), dtype=bool)  # no non-finite loss yet
        self.iteration = xp.zeros((), dtype=numpy.int64)  # steps run
        self.first_bad = xp.full((), -1, dtype=numpy.int64)
        self.loss, self.reconstr, self.kl = (
            xp.zeros((), dtype=_F32) for _ in range(3))
        self.load_step_count()
        self.load_hyperparams()

    def load_hyperparams(self):
        """Adam's hyperparameters from the optimizer into :attr:`hyper`,
        where they changed (a schedule changes them between steps; the
        graph reads them at each replay)."""
        values = fused.adam_hyperparams(self._optimizer.hyperparam)
        if self._hyper_loaded is None or \
                not numpy.array_equal(values, self._hyper_loaded):
            self.hyper[...] = self.xp.asarray(values)
            self._hyper_loaded = values

    def bind(self):
        """Make the parameters and Adam's moments views of the buffers again
        where something (a deserializer) replaced them, keeping values."""
        fused.bind_to_buffers(self._params, self._views['P'],
                              self._views['M'], self._views['V'])

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
                self.first_bad]

    def run(self):
        """Forward, backward and Adam, all on the device."""
        xp = self.xp
        loss, reconstr, kl, cache = fused.forward(
            xp, self.dot, self.p, self.x, self.eps, self._activation,
            self._k, self._C)
        finite = xp.isfinite(loss)
        xp.copyto(self.first_bad, self.iteration,
                  where=self.keep & ~finite)
        xp.logical_and(self.keep, finite, out=self.keep)
        self.iteration += 1
        for buffer, value in ((self.loss, loss), (self.reconstr, reconstr),
                              (self.kl, kl)):
            xp.copyto(buffer, value)
        fused.backward(xp, self.dot, self.p, cache, self.grads, _F32(1),
                       _F32(self._C))
        fused.adam(xp, self.P, self.G, self.M, self.V, self.t, self.hyper,
                   keep=self.keep)


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


def fused_loss_func(model, C=1.0, k=1):
    """The fused forward as a loss function for the Evaluator (eager, any
    batch size): ``get_loss_func(C, k)``'s value and reports, to float32
    rounding, from the same noise."""
    xp = model.xp
    names = cpu.param_names(model)
    params = dict(model.namedparams())

    def lf(x):
        p = {name: params[name].array for name in names}
        eps = device_lib.standard_normal(
            xp, (k * len(x), model.n_latent), numpy.float32)  # (k*B, L)
        loss, reconstr, kl, _ = fused.forward(
            xp, xp.dot, p, x, eps, model.activation, k, C)
        values = {name: chainer.Variable(xp.asarray(v, dtype=_F32))
                  for name, v in (('loss', loss), ('reconstr', reconstr),
                                  ('kl', kl))}
        chainer.report(values, observer=model)
        return values['loss']

    return lf


class GraphUpdater(Updater):
    """The updater of the graph path: each iteration copies the batch and
    the noise into the step's buffers and replays the captured step.

    Built like :class:`vae.train.trainer.Updater`; the step is built, warmed up
    and captured at the first iteration (so that a snapshot loaded before
    it is in place), and reports ``loss``, ``reconstr`` and ``kl`` as
    device scalars.

    Args:
        iterator, optimizer, device, seed: As for ``Updater``.
        model (vae.model.VAE): The model, on ``device``.
        k, C: The run's settings.
        capture (bool): Replay a CUDA graph (else run the step eagerly,
            the fused-eager path of the benchmark).
    """

    def __init__(self, iterator, optimizer, device, seed, model, k, C,
                 capture=True):
        super(GraphUpdater, self).__init__(iterator, optimizer, None, device,
                                           seed)
        self._model = model
        self._k, self._C = k, C
        self._capture = capture
        self._step = None
        self._replay = None
        self._first_iteration = None  # of this process, 0-based

    def _build(self, batchsize):
        device = self.device
        self._stream = device_lib.stream(device)
        with self._stream:
            dot = CublasDot(device.xp, self._stream) if not \
                device_lib.is_cpu(device) else device.xp.dot
            step = FusedStep(self._model, self.get_optimizer('main'),
                             batchsize, self._k, self._C, dot)
            self._replay = warm_up_and_capture(device, self._stream, step,
                                               self._capture)
        self._step = step

    def update_core(self):
        # the stream, the generator and the handle are the run's device's:
        # it must be current (CuPy 14 refuses another device's stream)
        with device_lib.current(self.device):
            self._update()

    def _update(self):
        iterator = self.get_iterator('main')
        batch = iterator.next()
        x = self.converter(batch, self.device)  # (B, n_in)
        if self._step is None:
            self._first_iteration = self.iteration
            self._build(len(x))
        step, xp = self._step, self.device.xp
        device_lib.reseed_noise(self.device, self._seed, self.iteration)
        with self._stream:
            step.load_hyperparams()
            step.x[...] = x
            step.eps[...] = device_lib.standard_normal(
                xp, step.eps.shape, numpy.float32)
            self._replay()
            chainer.report({'loss': step.loss.copy(),
                            'reconstr': step.reconstr.copy(),
                            'kl': step.kl.copy()}, observer=self._model)
        if iterator.is_new_epoch:
            self.get_optimizer('main').new_epoch(auto=True)
            self.check_finite()
            step.save_step_count()

    def check_finite(self):
        """Raise :class:`NonFiniteLossError` if a step's loss was not
        finite (one read from the device)."""
        first_bad = int(device_lib.to_cpu(self._step.first_bad))
        if first_bad >= 0:
            raise NonFiniteLossError(
                'non-finite loss at iteration %d; the CUDA graph applied '
                'neither that update nor any later one'
                % (self._first_iteration + first_bad + 1))

    def serialize(self, serializer):
        if self._step is not None and isinstance(
                serializer, chainer.serializer.Serializer):
            self._step.save_step_count()
        super(GraphUpdater, self).serialize(serializer)
        if self._step is not None and isinstance(
                serializer, chainer.serializer.Deserializer):
            self._step.bind()
            self._step.load_step_count()
