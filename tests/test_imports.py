"""Every entry point imports ``vae`` before Chainer.

Chainer 7.8.1 reads NumPy 1 names at import time; ``vae/_compat.py``
supplies them, so ``import vae`` must come first wherever Chainer is used
(a script that imported ``chainer`` first died on NumPy 2 before doing
anything). Checked twice: in the source of each script and of the
notebook, and by importing each script in a fresh interpreter from which
``numpy.sctypes`` (gone in NumPy 2) has been removed, on either stack.
"""
import ast
import json
import os
import subprocess
import sys

import pytest

from testutil import ROOT

SCRIPTS = sorted((ROOT / 'scripts').glob('*.py'))
NOTEBOOKS = sorted((ROOT / 'notebooks').glob('*.ipynb'))
#: Packages whose import needs vae/_compat.py to have run.
NEEDS_COMPAT = ('chainer', 'chainermn', 'onnx_chainer')


def imported_modules(tree):
    """Top-level module names in the order the import statements name them."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, a.name.split('.')[0]) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and \
                node.level == 0:
            names.append((node.lineno, node.module.split('.')[0]))
    return [name for _, name in sorted(names)]


def notebook_source(path):
    cells = json.loads(path.read_text())['cells']
    code = [''.join(c['source']) for c in cells if c['cell_type'] == 'code']
    # IPython's magics (a line starting with % or !) are not Python
    return '\n'.join(line for cell in code for line in cell.splitlines()
                     if not line.startswith(('%', '!')))


@pytest.mark.parametrize('path', SCRIPTS + NOTEBOOKS, ids=lambda p: p.name)
def test_vae_is_imported_before_chainer_in_the_source(path):
    source = (notebook_source(path) if path.suffix == '.ipynb'
              else path.read_text())
    names = imported_modules(ast.parse(source))
    first_vae = names.index('vae') if 'vae' in names else None
    for package in NEEDS_COMPAT:
        if package in names:
            assert first_vae is not None and \
                first_vae < names.index(package), (
                    '%s imports %s before vae' % (path.name, package))


def test_imported_modules_sees_the_order_of_statements():
    tree = ast.parse('import numpy\nimport chainer\nfrom vae import net\n')
    assert imported_modules(tree) == ['numpy', 'chainer', 'vae']


_IMPORT_WITHOUT_SCTYPES = '''
import importlib.util, sys, numpy
if hasattr(numpy, 'sctypes'):  # remove it as NumPy 2 did
    del numpy.sctypes
    numpy.__all__ = [name for name in numpy.__all__ if name != 'sctypes']
spec = importlib.util.spec_from_file_location('script', sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
'''


def test_each_script_imports_in_a_fresh_numpy2_like_interpreter():
    # the script's folder on the path, as when it runs (scripts/browser.py)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), str(ROOT / 'scripts'), os.environ.get('PYTHONPATH', '')]))
    runs = {path.name: subprocess.Popen(
        [sys.executable, '-c', _IMPORT_WITHOUT_SCTYPES, str(path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
        for path in SCRIPTS}
    failed = {}
    for name, run in runs.items():
        output, _ = run.communicate(timeout=120)
        if run.returncode:
            failed[name] = output.strip().splitlines()[-1:]
    assert not failed


def test_the_check_catches_chainer_first(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import chainer\nimport vae\n')
    run = subprocess.run([sys.executable, '-c', _IMPORT_WITHOUT_SCTYPES,
                          str(bad)], capture_output=True, text=True)
    assert run.returncode != 0 and 'sctypes' in run.stderr
    names = imported_modules(ast.parse(bad.read_text()))
    assert names.index('chainer') < names.index('vae')


#: Test-only packages a GPU machine may lack (docs/gpu.md); the modules
#: that need them skip themselves.
TEST_ONLY_PACKAGES = ('nbformat', 'nbclient', 'onnx', 'onnxruntime')


def test_gpu_tests_collect_without_the_test_only_packages():
    # `pytest -m gpu tests/` must collect on a machine without them: a
    # module importing one at its top stops the whole collection
    code = ('import sys; sys.modules.update(dict.fromkeys(%r)); '
            'import pytest; sys.exit(pytest.main(["-q", "-p", '
            '"no:cacheprovider", "--collect-only", "-m", "gpu", %r]))'
            % (TEST_ONLY_PACKAGES, str(ROOT / 'tests')))
    run = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, cwd=str(ROOT))
    assert run.returncode in (0, 5), run.stdout + run.stderr  # 5: none ran
    assert 'error' not in run.stdout.lower(), run.stdout
