"""Helpers shared by the test files."""
import importlib.util
import os
import pathlib
import sys

import numpy
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / 'scripts'
# the scripts' own helpers (scripts/browser.py) import as they do when a
# script runs, with its folder on the path
if str(SCRIPTS) not in sys.path:
    sys.path.append(str(SCRIPTS))


def tiny_config(**overrides):
    """A resolved configuration of a tiny model (784-16-16-3, 3 epochs)."""
    from vae import config
    settings = dict(n_latent=3, n_h=16, epoch=3, test=True)
    settings.update(overrides)
    return config.resolve(overrides=settings)


def command(name):
    """The command ``vae.commands.<name>`` (``scripts/<name>.py`` runs it)."""
    return importlib.import_module('vae.commands.' + name)


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


#: ``(make, message)``: ``make(folder)`` writes a bad model file there and
#: returns its path; every script refuses it with ``message`` in one line.
BAD_MODEL_FILES = [
    (lambda d: d / 'missing.npz', 'model file not found'),
    (lambda d: (d / 'text.npz').write_text('not a model') and d / 'text.npz',
     'is not a readable .npz model file'),
    (lambda d: numpy.savez(d / 'bare.npz', w=numpy.zeros(3)) or d / 'bare.npz',
     'is not a chainer-vae model file'),
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
