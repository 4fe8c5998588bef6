"""Import a script under scripts/ as a module, so tests call its main()."""
import importlib.util
import pathlib

SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / 'scripts'


def load_script(name):
    """The module ``scripts/<name>.py`` (nothing in it runs at import)."""
    spec = importlib.util.spec_from_file_location(
        'script_' + name, SCRIPTS / (name + '.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
