"""Helpers shared by the test files."""
import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / 'scripts'


def load_script(name):
    """The module ``scripts/<name>.py`` (nothing in it runs at import)."""
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
    (of ``vae.updater.Updater``, or of the subclass given).

    Undo with ``monkeypatch.undo()``.
    """
    from vae import updater
    updater_class = updater_class or updater.Updater
    original = updater_class.update_core

    def interrupted(self):
        if self.iteration == iteration - 1:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(updater_class, 'update_core', interrupted)
