"""Helpers shared by the test files."""
import contextlib
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / 'scripts'
# the scripts' own helpers (scripts/browser.py) import as they do when a
# script runs, with its folder on the path
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))


def tiny_config(**overrides):
    """A resolved configuration (a ``vae.config.Config``) of a tiny model
    (784-16-16-3, 3 epochs)."""
    from vae import config
    settings = dict(n_latent=3, n_h=16, epoch=3, test=True)
    settings.update(overrides)
    return config.resolve(overrides=settings)


def command(name):
    """The command ``vae.commands.<name>`` (``scripts/<name>.py`` runs it)."""
    return importlib.import_module('vae.commands.' + name)


def small_run(n_hidden=16, n_latent=2):
    """The flags of a small training run: the --test subset,
    784-``n_hidden``-``n_hidden``-``n_latent``."""
    return ['--test', '--n-hidden', str(n_hidden), '-z', str(n_latent),
            '--no-progress']


#: The flags of a small training run: the --test subset, 784-16-16-2.
SMALL_RUN = small_run()


def train_small(out, mnist_dir, *extra, n_hidden=16, n_latent=2):
    """The train command on a small run (:func:`small_run`) into ``out``;
    its exit status."""
    return command('train').main(small_run(n_hidden, n_latent)
                                 + ['--data-dir', mnist_dir, '-o', str(out)]
                                 + list(extra))


def run_main(module, argv):
    """``module.main(argv)`` (a command's or a tool's); ``(exit status,
    what it printed to stdout)``."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        rc = module.main(argv)
    return rc, printed.getvalue()


def read_log(out, times=True):
    """The entries of the training log in the run folder ``out``; without
    their ``elapsed_time`` unless ``times`` (the rest is reproducible)."""
    log = json.loads((pathlib.Path(out) / 'log').read_text())
    if times:
        return log
    return [{k: v for k, v in e.items() if k != 'elapsed_time'} for e in log]


def params_of(model):
    """``{name: array}``: a copy of each of ``model``'s parameters, on the
    CPU."""
    from vae import device
    return {name: device.to_cpu(p.array).copy()
            for name, p in model.namedparams()}


#: The training images of :func:`train_tiny`'s models (the first of MNIST's).
N_TRAIN = 300


def train_tiny(images, n_latent, n_h=16, steps=60, batchsize=50, seed=0):
    """A VAE(784, n_latent, n_h) after a few Adam steps on ``images``."""
    import chainer
    from vae.model import VAE
    numpy.random.seed(seed)
    model = VAE(784, n_latent, n_h, 'softplus')
    optimizer = chainer.optimizers.Adam()
    optimizer.setup(model)
    loss_func = model.get_loss_func()
    for step in range(steps):
        start = (step * batchsize) % (len(images) - batchsize + 1)
        loss = loss_func(images[start:start + batchsize])
        model.cleargrads()
        loss.backward()
        optimizer.update()
    return model


@pytest.fixture(scope='module', autouse=True)
def one_openmp_thread():
    """t-SNE on a few hundred points runs several times faster on one
    OpenMP thread on a busy 2-core machine: the threads' synchronisation
    costs more than they save at that size. Autouse: importing it into a
    test module applies it there."""
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=1, user_api='openmp'):
        yield


def gif_timeline(path):
    """(frames in the file, total milliseconds, size) of a GIF."""
    from PIL import Image, ImageSequence
    with Image.open(path) as im:
        durations = [frame.info['duration']
                     for frame in ImageSequence.Iterator(im)]
        return im.n_frames, sum(durations), im.size


def train_in_background(out, mnist_dir, epochs, **popen_args):
    """``scripts/train.py`` on a small run, as a process of its own, once
    it has written its first snapshot (the caller ends it)."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPTS / 'train.py')] + SMALL_RUN
        + ['--data-dir', mnist_dir, '-o', str(out), '-e', str(epochs)],
        text=True, **popen_args)
    deadline = time.time() + 60
    while not (pathlib.Path(out) / 'snapshot_epoch_1').exists():
        if process.poll() is not None or time.time() >= deadline:
            process.kill()
            output, _ = process.communicate()
            raise AssertionError('training ended or hung before its first '
                                 'snapshot: %s' % output)
        time.sleep(0.05)
    return process


def load_script(name):
    """The module ``scripts/<name>.py`` of a tool that is not a command
    (nothing in it runs at import)."""
    spec = importlib.util.spec_from_file_location(
        'script_' + name, SCRIPTS / (name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gpu_available():
    """True where CuPy imports and sees a CUDA GPU."""
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # ImportError, or CUDARuntimeError without a driver
        return False


def interrupt_at(monkeypatch, iteration, updater_class=None):
    """Make training raise KeyboardInterrupt (Ctrl-C) before ``iteration``
    (of ``vae.train.updater.Updater``, or of the subclass given).

    Undo with ``monkeypatch.undo()``.
    """
    from vae.train import updater
    updater_class = updater_class or updater.Updater
    original = updater_class.update_core

    def interrupted(self):
        if self.iteration == iteration - 1:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(updater_class, 'update_core', interrupted)


def poison_graph_at(monkeypatch, iteration):
    """Make the CUDA-graph path's training set NaN just before
    ``iteration`` (1-based), so that its loss is not finite there."""
    from vae.train import graph_updater
    original = graph_updater.GraphUpdater.update_core

    def poisoned(self):
        if self.iteration == iteration - 1:
            self._step.data[...] = numpy.nan  # the training set's copy
        original(self)

    monkeypatch.setattr(graph_updater.GraphUpdater, 'update_core', poisoned)


def damaged_compressed_model(folder):
    """A model file written compressed (``savez_compressed``) whose first
    weight's deflate stream starts with an invalid block type: reading it
    raises ``zlib.error``, not a CRC error. Returns its path."""
    import struct
    import zipfile
    from vae import VAE
    from vae.train.model_files import save_model
    plain, path = folder / 'plain.npz', folder / 'deflated.npz'
    save_model(plain, VAE(784, 2, 8))
    with numpy.load(plain) as npz:
        numpy.savez_compressed(path, **dict(npz))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo('le1/W.npy')
    data = bytearray(path.read_bytes())
    name_length, extra_length = struct.unpack(
        '<HH', data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_length + extra_length
    data[start] = 0xff  # BFINAL 1, BTYPE 11: a block type deflate lacks
    path.write_bytes(bytes(data))
    return path


def nan_model(folder):
    """A model file of a run that diverged: one bias is NaN."""
    from vae import VAE
    from vae.train.model_files import save_model
    model = VAE(784, 2, 8)
    model.ld3.b.array[3] = numpy.nan
    save_model(folder / 'diverged.npz', model)
    return folder / 'diverged.npz'


#: ``(make, message)``: ``make(folder)`` writes a bad model file there and
#: returns its path; every script refuses it with ``message`` in one line.
BAD_MODEL_FILES = [
    (lambda d: d / 'missing.npz', 'model file not found'),
    (lambda d: (d / 'text.npz').write_text('not a model') and d / 'text.npz',
     'is not a readable .npz model file'),
    (lambda d: numpy.savez(d / 'bare.npz', w=numpy.zeros(3)) or d / 'bare.npz',
     'is not a chainer-vae model file'),
    (damaged_compressed_model, 'is damaged (Error -3 while decompressing '
     'data: invalid block type)'),
    (nan_model, 'holds weights that are NaN or infinite (ld3/b)'),
]


def assert_one_line_error(excinfo, message):
    """A ``SystemExit`` whose text is one line, 'error: ...message...'."""
    text = str(excinfo.value.code)
    assert text.startswith('error: ') and message in text, text
    assert '\n' not in text


def unavailable(message):
    """Skip the test for want of an optional tool, or fail under CI.

    CI (``$CI`` set) installs every tool the suite needs (``.ci/run``), so
    there a missing one is an error, as the MNIST fixture treats the data.
    """
    if os.environ.get('CI'):
        pytest.fail(message)
    pytest.skip(message)


def full_disk(name, limit):
    """An ``open`` for :mod:`vae.atomic` (set as ``vae.atomic.open``) that
    fills the disk: writes to a temporary file of a file whose name starts
    with ``name`` fail with ENOSPC after ``limit`` bytes, as a full disk
    fails them (in the raw writes under Python's buffer)."""
    import builtins
    import errno
    import io

    class FullDisk(io.FileIO):
        written = 0

        def write(self, data):
            n = len(memoryview(data).cast('B'))
            if self.written + n > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.written += n
            return super().write(data)

    def open_(path, mode='r', *args, **kwargs):
        base = os.path.basename(os.fspath(path))
        if base.startswith('.' + name) and 'w' in mode and 'b' in mode:
            return io.BufferedWriter(FullDisk(path, 'w'))
        return builtins.open(path, mode, *args, **kwargs)

    return open_
