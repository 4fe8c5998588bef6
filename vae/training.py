"""Training with Chainer's Trainer: the updater, its guards and extensions.

The loop is the article's (Adam, shuffled minibatches, the negative ELBO
with k samples) run by ``chainer.training.Trainer`` as in Chainer's own VAE
example. What this module adds is what a long run needs: a snapshot every
epoch that also holds the NumPy random state (so that a resumed run equals
an uninterrupted one), a guard that stops on a non-finite loss before any
weight changes, atomic outputs and checks that a resumed run has the sizes
of the run it continues.
"""
import functools
import json
import os
import shutil
import subprocess
import sys

import chainer
import numpy
from chainer import training
from chainer.training import extensions

from vae import config as config_lib
from vae import fast as fast_lib
from vae import figures, serialization
from vae.net import VAE

SNAPSHOT_FORMAT = 'snapshot_epoch_{.updater.epoch}'
SNAPSHOT_PREFIX = 'snapshot_epoch_'
MODEL_FILE = 'model.npz'
CONFIG_FILE = 'config.json'
LOG_FILE = 'log'
LOSS_PLOT = 'loss.png'
GRAPH_DOT = 'cg.dot'
GRAPH_PNG = 'network.png'


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; no weight was updated with it."""


class ResumeError(ValueError):
    """A snapshot or earlier run in ``--out`` does not fit the request."""


class GuardedUpdater(training.updaters.StandardUpdater):
    """``StandardUpdater`` that refuses to apply a non-finite loss.

    The loss is checked after the forward pass and before backward and the
    optimizer step, so the weights, the snapshots and ``model.npz`` keep
    their last good values.
    """

    def update_core(self):
        iterator = self._iterators['main']
        optimizer = self._optimizers['main']
        epoch = iterator.epoch + 1  # the epoch this batch belongs to
        batch = iterator.next()
        x = self.converter(batch, self.device)  # (B, n_in)
        loss = self.loss_func(x)
        value = float(loss.array)
        if not numpy.isfinite(value):
            raise NonFiniteLossError(
                'non-finite loss (%r) at iteration %d (epoch %d); training '
                'stopped before this update, so the last snapshot and model '
                'file are intact. Try a smaller --alpha or another --seed.'
                % (value, self.iteration + 1, epoch))
        optimizer.target.cleargrads()
        loss.backward()
        optimizer.update()
        if iterator.is_new_epoch:
            optimizer.new_epoch(auto=True)  # as StandardUpdater does


class NumpyRandomState(training.Extension):
    """Puts NumPy's global random state into the trainer's snapshots.

    The shuffling iterator and ``F.gaussian`` on the CPU draw from it, so
    restoring it makes a resumed run continue with the very numbers an
    uninterrupted run would have drawn.
    """

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER

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
    priority = training.PRIORITY_READER

    def __init__(self, rng):
        self._rng = rng

    def __call__(self, trainer):
        pass

    def serialize(self, serializer):
        state = json.dumps(self._rng.bit_generator.state)
        state = serializer('state', state)
        self._rng.bit_generator.state = json.loads(str(state))


class SaveModel(training.Extension):
    """Writes ``model.npz`` (parameters and sizes) atomically."""

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER

    def __init__(self, model, filename=MODEL_FILE):
        self._model = model
        self._filename = filename

    def __call__(self, trainer):
        serialization.save_model(
            os.path.join(trainer.out, self._filename), self._model)


class LossPlot(training.Extension):
    """Draws the loss curves from the ``LogReport`` log, atomically."""

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER

    def __init__(self, log_report, filename=LOSS_PLOT):
        self._log_report = log_report
        self._filename = filename

    def __call__(self, trainer):
        fig = figures.loss_curves(self._log_report.log)
        serialization.save_png(fig, os.path.join(trainer.out, self._filename))


class GraphExport(training.Extension):
    """The article's graph of the loss: ``cg.dot`` and ``network.png``.

    Drawn once, when training starts and ``cg.dot`` is missing, from the
    plain loss (``model.get_loss_func``, Chainer's own functions, as the
    article drew it) on a CPU copy of the model, whichever path trains. The
    random state is put back afterwards, so drawing it changes no result.
    The files are written atomically; the PNG needs Graphviz's ``dot``
    (without it a one-line hint says how to make it).
    """

    trigger = (1, 'epoch')
    priority = training.PRIORITY_READER

    def __init__(self, model, x, C, k, filename=GRAPH_DOT, image=GRAPH_PNG):
        self._model = model
        self._x = x
        self._C = C
        self._k = k
        self._filename = filename
        self._image = image

    def initialize(self, trainer):
        dot_path = os.path.join(trainer.out, self._filename)
        if os.path.exists(dot_path):
            return
        graph = loss_graph(self._model, self._x, self._C, self._k)
        serialization.atomic_write_text(dot_path, graph)
        render_graph(dot_path, os.path.join(trainer.out, self._image))

    def __call__(self, trainer):
        pass


def loss_graph(model, x, C=1.0, k=1):
    """Graphviz source of the plain loss's graph on the batch ``x`` (NumPy)."""
    model = model.copy(mode='copy')
    model.to_device('@numpy')
    state = numpy.random.get_state()  # F.gaussian draws from it
    try:
        reporter = chainer.Reporter()
        reporter.add_observer('main', model)
        with reporter.scope({}):
            loss = model.get_loss_func(C=C, k=k)(numpy.asarray(x))
    finally:
        numpy.random.set_state(state)
    return chainer.computational_graph.build_computational_graph(
        [loss]).dump()


def render_graph(dot_path, png_path):
    """Render a Graphviz file to PNG; False (with a note) where it cannot."""
    if shutil.which('dot') is None:
        print('note: Graphviz is not installed, so %s was not drawn; install '
              'it (e.g. apt-get install graphviz) and run: dot -Tpng %s -o %s'
              % (png_path, dot_path, png_path), file=sys.stderr)
        return False
    try:
        with serialization.atomic_path(png_path) as tmp:
            subprocess.run(['dot', '-Tpng', dot_path, '-o', tmp], check=True,
                           capture_output=True)
    except subprocess.CalledProcessError as e:
        print('note: Graphviz could not draw %s (%s)'
              % (png_path, e.stderr.decode(errors='replace').strip()),
              file=sys.stderr)
        return False
    return True


def latest_snapshot(out):
    """Path of the newest ``snapshot_epoch_N`` in ``out`` (by N), or None."""
    if not os.path.isdir(out):
        return None
    epochs = []
    for name in os.listdir(out):
        suffix = name[len(SNAPSHOT_PREFIX):]
        if name.startswith(SNAPSHOT_PREFIX) and suffix.isdigit():
            epochs.append((int(suffix), name))
    return os.path.join(out, max(epochs)[1]) if epochs else None


def check_previous_run(out, config):
    """Refuse to continue a run in ``out`` made with other settings.

    Only the settings in :data:`vae.config.RESUMABLE_KEYS` may change; any
    other difference would make the resumed run a different run than its
    ``config.json`` and log say. Nothing in ``out`` is touched.
    """
    path = os.path.join(out, CONFIG_FILE)
    has_work = (latest_snapshot(out) is not None
                or os.path.exists(os.path.join(out, MODEL_FILE)))
    if not os.path.exists(path) or not has_work:
        return
    previous = config_lib.read_config_file(path)
    diffs = ['%s=%r there, %r now' % (key, previous[key], config[key])
             for key in sorted(config)
             if key in previous and key not in config_lib.RESUMABLE_KEYS
             and previous[key] != config[key]]
    if diffs:
        kind = ('another model' if any(
            key in previous and previous[key] != config[key]
            for key in config_lib.MODEL_KEYS) else 'other settings')
        raise ResumeError(
            '%s holds a run of %s (%s); it cannot be continued with these '
            'settings, and it is left untouched. Use another --out, or the '
            'same settings to continue it.' % (out, kind, '; '.join(diffs)))


def check_snapshot(path, model):
    """Raise :class:`ResumeError` unless a snapshot's weights fit ``model``."""
    if not os.path.exists(path):
        raise ResumeError('snapshot not found: %s' % path)
    try:
        with numpy.load(path) as npz:
            shapes = {key: npz[key].shape for key in npz.files
                      if key.startswith('updater/model:main/')}
    except Exception as e:  # a truncated zip raises several types
        raise ResumeError('%s is not a readable snapshot (%s)' % (path, e))
    diffs = []
    for name, param in sorted(model.namedparams()):
        key = 'updater/model:main' + name
        if key not in shapes:
            diffs.append('%s missing' % name)
        elif shapes[key] != param.shape:
            diffs.append('%s is %s there, %s here'
                         % (name, shapes[key], param.shape))
    if diffs:
        raise ResumeError(
            'snapshot %s does not fit the model (n_in, dim_z, n_hidden) = '
            '(%d, %d, %d): %s' % (path, model.n_in, model.n_latent,
                                  model.n_h, '; '.join(diffs)))


def build_model(config, n_in=784):
    """The VAE that ``config`` describes."""
    return VAE(n_in, config['dim_z'], config['n_hidden'], config['activation'])


def seed_everything(seed, device):
    """Seed the RNGs that model init, shuffling and noise draw from."""
    numpy.random.seed(seed)
    if device.xp is not numpy:
        with device:  # CuPy keeps a generator per GPU
            device.xp.random.seed(seed)


def train(config, out, train_data, test_data, device, resume=None,
          progress=True, n_in=784):
    """Train a VAE as ``config`` says, writing everything under ``out``.

    ``config['fast']`` trains and evaluates with :mod:`vae.fast` (the fused
    loss and the flat Adam: the same numbers, faster) where it supports the
    model and device; elsewhere a note says so and the plain path runs.

    Args:
        config (dict): A resolved configuration (:func:`vae.config.resolve`).
        out (str): Output folder; an earlier run there is continued from its
            latest snapshot.
        train_data, test_data: Datasets of images, (N, n_in) float32.
        device (chainer.backend.Device): Where to train.
        resume (str): A snapshot to start from instead of the latest in out.
        progress (bool): Show Chainer's progress bar.

    Returns:
        VAE: the trained model, on ``device``.
    """
    os.makedirs(out, exist_ok=True)
    check_previous_run(out, config)
    seed_everything(config['seed'], device)
    model = build_model(config, n_in)
    snapshot = resume or latest_snapshot(out)
    if snapshot is not None:
        check_snapshot(snapshot, model)
    serialization.atomic_write_text(
        os.path.join(out, CONFIG_FILE),
        json.dumps(config, indent=2, sort_keys=True) + '\n')

    model.to_device(device)
    fast = config['fast']
    why_not = fast and fast_lib.unsupported_reason(model, device)
    if why_not:
        print('note: %s; training on the plain path' % why_not,
              file=sys.stderr)
    if fast and not why_not:
        optimizer = fast_lib.FlatAdam(alpha=config['alpha'])
        make_loss_func = functools.partial(fast_lib.loss_func, model)
    else:
        optimizer = chainer.optimizers.Adam(alpha=config['alpha'])
        make_loss_func = model.get_loss_func
    optimizer.setup(model)

    train_iter = chainer.iterators.SerialIterator(
        train_data, config['batchsize'])
    test_iter = chainer.iterators.SerialIterator(
        test_data, config['batchsize'], repeat=False, shuffle=False)
    updater = GuardedUpdater(
        train_iter, optimizer, device=device,
        loss_func=make_loss_func(C=config['C'], k=config['k']))
    trainer = training.Trainer(updater, (config['epoch'], 'epoch'), out=out)

    trainer.extend(extensions.Evaluator(
        test_iter, model, device=device,
        eval_func=make_loss_func(C=config['C'], k=config['k_test'])))
    trainer.extend(GraphExport(model, test_data[:config['batchsize']],
                               config['C'], config['k']))
    log_report = extensions.LogReport(filename=LOG_FILE)
    trainer.extend(log_report)
    trainer.extend(LossPlot(log_report))
    trainer.extend(SaveModel(model))
    trainer.extend(NumpyRandomState())
    if isinstance(getattr(train_data, 'rng', None), numpy.random.Generator):
        # DynamicBinarized draws its samples from a generator of its own
        trainer.extend(GeneratorState(train_data.rng), name='DataRandomState')
    trainer.extend(extensions.snapshot(
        filename=SNAPSHOT_FORMAT, n_retains=config['snapshot_retain'],
        autoload=False), trigger=(1, 'epoch'))
    trainer.extend(extensions.PrintReport(
        ['epoch', 'main/loss', 'validation/main/loss', 'main/reconstr',
         'validation/main/reconstr', 'main/kl', 'validation/main/kl',
         'elapsed_time'], out=sys.stdout))
    if progress:
        trainer.extend(extensions.ProgressBar(update_interval=10))

    if snapshot is not None:
        # the snapshot check_snapshot approved: the one of the highest epoch
        # (Chainer's autoload would pick the newest file time instead)
        try:
            chainer.serializers.load_npz(snapshot, trainer)
        except (KeyError, ValueError) as e:
            raise ResumeError('cannot resume from %s: %s' % (snapshot, e))
    trainer.run(show_loop_exception_msg=False)
    serialization.save_model(os.path.join(out, MODEL_FILE), model)
    return model
