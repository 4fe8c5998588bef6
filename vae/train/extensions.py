"""The Trainer extensions a run adds to Chainer's own.

Each writes its file atomically (:mod:`vae.atomic`) into the trainer's
``out``, or carries state that a resumed run needs into the snapshots, or
(over several processes) averages what the ranks observed.
"""
import json
import os
import shutil
import subprocess
import sys

import chainer
import numpy
from chainer import serializers, training

from vae import atomic

from vae.viz import figures

from vae.train import run_folder

from vae.train import model_files
from vae import device as device_lib
from vae.model import VAE

#: Entry of a snapshot holding the settings of the run that wrote it.
SNAPSHOT_CONFIG_KEY = '_vae_config'


class NumpyRandomState(training.Extension):
    """Puts NumPy's global random state into the trainer's snapshots.

    The shuffling iterator and, on the CPU, the noise draw from it, so
    restoring it makes a resumed run continue with the very numbers an
    uninterrupted run would have drawn.
    """

    trigger = (1, 'epoch')

    def __call__(self, trainer):
        pass

    def serialize(self, serializer):
        if isinstance(serializer, chainer.serializer.Serializer):
            name, keys, pos, has_gauss, cached = numpy.random.get_state()
            serializer('keys', keys)
            serializer('pos', pos)
            serializer('has_gauss', has_gauss)
            serializer('cached_gaussian', cached)
        else:
            keys = serializer('keys', numpy.empty(624, numpy.uint32))
            pos = serializer('pos', 0)
            has_gauss = serializer('has_gauss', 0)
            cached = serializer('cached_gaussian', 0.0)
            numpy.random.set_state(
                ('MT19937', keys, int(pos), int(has_gauss), float(cached)))


class GeneratorState(training.Extension):
    """Puts a ``numpy.random.Generator`` (a dataset's) into the snapshots."""

    trigger = (1, 'epoch')

    def __init__(self, rng):
        self._rng = rng

    def __call__(self, trainer):
        pass

    def serialize(self, serializer):
        state = json.dumps(self._rng.bit_generator.state)
        state = serializer('state', state)
        self._rng.bit_generator.state = json.loads(str(state))


class MeanOverRanks(training.Extension):
    """Replaces this iteration's observed values of ``keys`` with their mean
    over the ranks, before ``LogReport`` reads them.

    The values of all keys travel in one MPI all-reduce (a float64 sum,
    divided by the number of ranks). ChainerMN's ``ObservationAggregator``
    would do the same one key and two messages at a time, but in Chainer
    7.8.1 it moves each value with ``Variable.to_device('native')``, which
    needs ChainerX, absent from Chainer's ordinary install.

    Args:
        comm: The ChainerMN communicator.
        keys (tuple of str): Observation names, such as ``'main/loss'``.
    """

    trigger = (1, 'iteration')
    priority = training.PRIORITY_EDITOR

    def __init__(self, comm, keys):
        self._comm = comm
        self._keys = tuple(keys)

    def __call__(self, trainer):
        observation = trainer.observation
        values = numpy.array([float(chainer.as_array(observation[key]))
                              for key in self._keys])
        means = self._comm.allreduce(values) / self._comm.size
        for key, mean in zip(self._keys, means):
            observation[key] = float(mean)


class RankStates(training.Extension):
    """Every rank's own state, in the snapshots that rank 0 writes.

    Over several processes each rank shuffles its share of the data and
    draws its noise from its own NumPy generator (and a dynamic
    binarization from its own), so a snapshot holds, for every rank ``r``,
    under ``r/``: NumPy's random state, the position and order of its
    iterator and the data generator's state. After each epoch, just before
    :class:`Snapshot`, rank 0 gathers them; on resuming, each rank takes
    back its own (after the updater has loaded rank 0's iterator, which
    this overrides).

    Args:
        comm: The ChainerMN communicator.
        iterator: The training iterator of this rank.
        rng (numpy.random.Generator): The data's generator, or ``None``.
    """

    trigger = (1, 'epoch')
    priority = -99  # after everything that draws, just before Snapshot

    def __init__(self, comm, iterator, rng=None):
        self._comm = comm
        self._parts = {'numpy': NumpyRandomState(), 'iterator': iterator}
        if rng is not None:
            self._parts['data'] = GeneratorState(rng)
        self._gathered = []

    def __call__(self, trainer):
        state = {}
        saver = serializers.DictionarySerializer(state)
        for name, part in sorted(self._parts.items()):
            part.serialize(saver[name])
        self._gathered = self._comm.gather_obj(state) or []

    def serialize(self, serializer):
        if isinstance(serializer, chainer.serializer.Serializer):
            for rank, state in enumerate(self._gathered):
                for key, value in sorted(state.items()):
                    serializer['%d' % rank](key, value)
        else:
            mine = serializer['%d' % self._comm.rank]
            for name, part in sorted(self._parts.items()):
                part.serialize(mine[name])


class Snapshot(training.Extension):
    """The trainer's state after each epoch as ``snapshot_epoch_N``.

    The file has the layout of ``chainer.training.extensions.snapshot``
    plus the run's settings (:data:`SNAPSHOT_CONFIG_KEY`), is written
    atomically, and only the ``retain`` snapshots of the highest epochs are
    kept (Chainer's writer keeps the newest files by time instead).

    Args:
        config (vae.config.Config): The run's settings.
        retain (int): How many snapshots to keep.
    """

    trigger = (1, 'epoch')
    priority = -100  # after every other extension, as Chainer's snapshot

    def __init__(self, config, retain):
        self._config = json.dumps(config.as_dict(), sort_keys=True)
        self._retain = retain

    def __call__(self, trainer):
        arrays = {}
        serializers.DictionarySerializer(arrays).save(trainer)
        arrays[SNAPSHOT_CONFIG_KEY] = numpy.array(self._config)
        epoch = trainer.updater.epoch
        atomic.save_npz(os.path.join(
            trainer.out, run_folder.snapshot_name(epoch)), arrays)
        for _, path in run_folder.snapshots(trainer.out)[:-self._retain]:
            os.remove(path)


class SaveModel(training.Extension):
    """Writes ``model.npz`` (parameters and sizes) after each epoch."""

    trigger = (1, 'epoch')

    def __init__(self, model):
        self._model = model

    def __call__(self, trainer):
        model_files.save_model(
            os.path.join(trainer.out, run_folder.MODEL_FILE), self._model)


class LogFile(training.Extension):
    """Writes the ``LogReport`` log to ``log`` (JSON) after each epoch.

    ``LogReport`` is given no file of its own, so that the log too is
    written atomically.
    """

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER - 1  # after LogReport has added

    def __init__(self, log_report):
        self._log_report = log_report

    def __call__(self, trainer):
        atomic.write_text(os.path.join(trainer.out, run_folder.LOG_FILE),
                          json.dumps(self._log_report.log, indent=4))


class LossPlot(training.Extension):
    """Draws the loss curves from the ``LogReport`` log after each epoch."""

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER - 1

    def __init__(self, log_report):
        self._log_report = log_report

    def __call__(self, trainer):
        atomic.save_png(figures.loss_curves(self._log_report.log),
                        os.path.join(trainer.out, run_folder.LOSS_PLOT))


class GraphExport(training.Extension):
    """The article's graph of the loss: ``cg.dot`` and ``network.png``.

    Drawn when training starts, for the model of this run, from the
    reference loss (``model.get_loss_func()``: Chainer's own functions, as
    the article drew it) on a CPU copy of the model, whichever path trains;
    the picture says so in its title (:data:`GRAPH_TITLE`). NumPy's
    random state is put back afterwards, so drawing it changes no result.
    The PNG needs Graphviz's ``dot`` (without it a one-line note says how
    to make it).
    """

    trigger = (1, 'epoch')

    def __init__(self, model, x, C, k):
        self._model = model
        self._x = x
        self._C = C
        self._k = k

    def initialize(self, trainer):
        dot_path = os.path.join(trainer.out, run_folder.GRAPH_DOT)
        atomic.write_text(dot_path, loss_graph(self._model, self._x,
                                               self._C, self._k))
        render_graph(dot_path, os.path.join(trainer.out,
                                            run_folder.GRAPH_PNG))

    def __call__(self, trainer):
        pass


#: The title of ``network.png``: what it draws, and what training runs.
GRAPH_TITLE = ('The reference graph, VAE.get_loss_func().\\nDefault CPU '
               'training runs the same arithmetic\\nas one node: '
               'get_loss_func(fused=True).')


def loss_graph(model, x, C=1.0, k=1):
    """Graphviz source of the reference loss's graph on the batch ``x``
    (NumPy), titled :data:`GRAPH_TITLE`, drawn with a CPU copy of ``model``
    (whose device stays untouched)."""
    state = numpy.random.get_state()  # initializing and the noise draw on it
    try:
        model = cpu_copy(model)
        reporter = chainer.Reporter()
        reporter.add_observer('main', model)
        with reporter.scope({}):
            loss = model.get_loss_func(C=C, k=k)(numpy.asarray(x))
    finally:
        numpy.random.set_state(state)
    dot = chainer.computational_graph.build_computational_graph(
        [loss]).dump()
    head, brace, body = dot.partition('{')
    return '%s%slabel="%s";labelloc=t;%s' % (head, brace, GRAPH_TITLE, body)


def cpu_copy(model):
    """A new VAE on the CPU with ``model``'s sizes and weights (drawing its
    initial weights from NumPy's generator)."""
    copy = VAE(model.n_in, model.n_latent, model.n_h, model.act_func)
    params = dict(model.namedparams())
    for name, param in copy.namedparams():
        param.array[...] = device_lib.to_cpu(params[name].array)
    return copy


def render_graph(dot_path, png_path):
    """Render a Graphviz file to PNG; False (with a note) where it cannot."""
    if shutil.which('dot') is None:
        print('note: Graphviz is not installed, so %s was not drawn; install '
              'it (e.g. apt-get install graphviz) and run: dot -Tpng %s -o %s'
              % (png_path, dot_path, png_path), file=sys.stderr)
        return False
    try:
        with atomic.atomic_path(png_path) as tmp:
            subprocess.run(['dot', '-Tpng', dot_path, '-o', tmp], check=True,
                           capture_output=True)
    except subprocess.CalledProcessError as e:
        print('note: Graphviz could not draw %s (%s)'
              % (png_path, e.stderr.decode(errors='replace').strip()),
              file=sys.stderr)
        return False
    return True


class PlainStream(object):
    """A text stream for ``PrintReport`` that drops its terminal codes.

    ``PrintReport`` writes ``ESC [J`` (erase to the end of the screen)
    before each line, to clear what the progress bar drew; in a file or a
    pipe the code is noise.
    """

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        if text == '\033[J' and not self._isatty():
            return
        self._stream.write(text)

    def flush(self):
        self._stream.flush()

    def _isatty(self):
        return getattr(self._stream, 'isatty', lambda: False)()
