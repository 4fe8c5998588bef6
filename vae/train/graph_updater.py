"""The updater of the CUDA-graph path (``train.py --cuda-graph``): it builds,
warms up and captures :class:`vae.kernels.cuda_graph.FusedStep` at the first
iteration, then replays it; where the training set is an array it lives on
the device and each epoch's order and noise are drawn in one call each
(:class:`DeviceEpochs`).
"""
import chainer
import numpy

from vae import device as device_lib
from vae.kernels.cublas import CublasDot
from vae.kernels.cuda_graph import FusedStep, warm_up_and_capture
from vae.train.updater import NonFiniteLossError, Updater

_F32 = numpy.float32


class DeviceEpochs(object):
    """The training iterator of the graph path where the training set lives
    on the device: it hands out no batches (the graph gathers them), it
    counts, as Chainer's iterators do, the iterations and epochs that the
    trainer, its triggers and its snapshots read.

    An epoch is ``len(dataset) // batch_size`` batches of distinct images,
    in the order the updater draws at the epoch's start; the
    ``len(dataset) % batch_size`` images left over (none for MNIST at
    batch 100) sit that epoch out. Snapshots hold what
    ``SerialIterator`` holds, under its names, positions in images.
    """

    def __init__(self, dataset, batch_size):
        self.dataset, self.batch_size = dataset, batch_size
        self.batches = len(dataset) // batch_size
        self.epoch = 0
        self.current_position = 0  # batches into the epoch
        self.is_new_epoch = False
        self._previous_epoch_detail = -1.0

    def __next__(self):
        self._previous_epoch_detail = self.epoch_detail
        self.current_position += 1
        self.is_new_epoch = self.current_position == self.batches
        if self.is_new_epoch:
            self.epoch += 1
            self.current_position = 0

    next = __next__

    def __iter__(self):
        return self

    @property
    def epoch_detail(self):
        return self.epoch + self.current_position / self.batches

    @property
    def previous_epoch_detail(self):
        if self._previous_epoch_detail < 0:
            return None
        return self._previous_epoch_detail

    def finalize(self):
        pass

    def serialize(self, serializer):
        self.current_position = int(serializer(
            'current_position', self.current_position * self.batch_size)) \
            // self.batch_size
        self.epoch = int(serializer('epoch', self.epoch))
        self.is_new_epoch = bool(serializer('is_new_epoch',
                                            self.is_new_epoch))
        # an order for SerialIterator, which needs one to load this
        # snapshot (a run resumed where the graph cannot run); the graph
        # draws its own at each epoch's start
        serializer('order', numpy.arange(len(self.dataset)))
        detail = serializer('previous_epoch_detail',
                            self._previous_epoch_detail)
        self._previous_epoch_detail = float(detail)


def on_device_data(dataset):
    """Whether the graph can hold ``dataset`` on the device and gather its
    batches itself: an array of float32 rows (a dataset that draws its
    examples anew, such as dynamic binarization, is read on the host)."""
    return isinstance(dataset, numpy.ndarray) and dataset.ndim == 2 and \
        dataset.dtype == _F32


class GraphUpdater(Updater):
    """The updater of the graph path: each iteration replays the captured
    step.

    Built like :class:`vae.train.updater.Updater`; the step is built, warmed up
    and captured at the first iteration (so that a snapshot loaded before
    it is in place).

    Where the training set is an array (:func:`on_device_data`), it is
    copied to the device once, the iterator becomes a
    :class:`DeviceEpochs`, and at each epoch's start the updater draws the
    epoch's order of the images and all of its noise, one call each, from
    the device's generator seeded with (seed, epoch)
    (:func:`vae.device.epoch_seed`): a resumed run draws what an
    uninterrupted one did. The graph gathers each batch and its noise
    itself; between two replays only Python's counters run. Otherwise
    (a dataset read on the host) each iteration copies the batch and noise
    drawn as on the plain GPU path into the step's buffers.

    The graph sums ``loss``, ``reconstr`` and ``kl`` on the device; their
    means over the epoch are reported once, at its last iteration, where
    ``LogReport`` takes them (the means it computed when each iteration
    reported its values).

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
        self._in_epoch = 0  # iterations in this epoch's totals
        self._gathers = on_device_data(iterator.dataset)
        if self._gathers:
            self._iterators['main'] = DeviceEpochs(iterator.dataset,
                                                   iterator.batch_size)

    def _build(self, batchsize):
        device = self.device
        self._stream = device_lib.stream(device)
        with self._stream:
            dot = CublasDot(device.xp, self._stream) if not \
                device_lib.is_cpu(device) else device.xp.dot
            step = FusedStep(self._model, self.get_optimizer('main'),
                             batchsize, self._k, self._C, dot)
            if self._gathers:
                iterator = self.get_iterator('main')
                step.gather_from(device.send(iterator.dataset),
                                 iterator.batches)
            self._replay = warm_up_and_capture(device, self._stream, step,
                                               self._capture)
        self._step = step

    def update_core(self):
        # the stream, the generator and the handle are the run's device's:
        # it must be current (CuPy 14 refuses another device's stream)
        with device_lib.current(self.device):
            if self._gathers:
                self._update_gathered()
            else:
                self._update_from_host()
        self._in_epoch += 1
        if self.get_iterator('main').is_new_epoch:
            self._end_epoch()

    def _update_gathered(self):
        iterator = self.get_iterator('main')
        if self._step is None:
            self._first_iteration = self.iteration
            self._build(iterator.batch_size)
        with self._stream:
            if iterator.current_position == 0:
                self.draw_epoch(iterator.epoch)
            self._step.load_hyperparams()
            self._replay()
        iterator.next()

    def draw_epoch(self, epoch):
        """The order of the images and all the noise of ``epoch``, each in
        one call, from the device's generator seeded with (seed, epoch);
        the graph reads them from the first batch."""
        step, xp = self._step, self.device.xp
        device_lib.reseed(self.device,
                          device_lib.epoch_seed(self._seed, epoch))
        step.order[...] = xp.random.permutation(len(step.order))
        step.noise[...] = device_lib.standard_normal(
            xp, step.noise.shape, numpy.float32)
        step.batch.fill(0)

    def _update_from_host(self):
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

    def _end_epoch(self):
        step = self._step
        with device_lib.current(self.device), self._stream:
            # LogReport's means, read once
            chainer.report(step.means(self._in_epoch), observer=self._model)
            step.reset_totals()
        self._in_epoch = 0
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
