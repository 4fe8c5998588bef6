"""vae/_compat.py: Chainer 7.8.1 on NumPy 2, Python 3.12+ and new setuptools.

The suite runs on both NumPy stacks (make test); these tests check the
shims themselves, and, in a fresh interpreter where the old modules are
made unimportable, that Chainer imports and the model trains a step.
"""
import subprocess
import sys
import textwrap

import numpy
import pytest

from vae import _compat

NUMPY_MAJOR = int(numpy.__version__.split('.')[0])


def test_sctypes_shim_matches_numpy1_table():
    table = _compat._sctypes()
    assert table['int'] == [numpy.int8, numpy.int16, numpy.int32, numpy.int64]
    # Chainer's as_strided maps item sizes to int types with it.
    assert {t().itemsize: t for t in table['int']}[8] is numpy.int64
    assert numpy.float32 in table['float']
    if NUMPY_MAJOR < 2:
        for kind in ('int', 'uint', 'float', 'complex'):
            assert set(table[kind]) == set(numpy.sctypes[kind]), kind


def test_shims_applied_only_where_needed():
    import chainer  # NOQA: F401  (imported through vae already)
    if NUMPY_MAJOR >= 2:
        assert 'numpy.sctypes' in _compat.APPLIED
    else:
        assert 'numpy.sctypes' not in _compat.APPLIED
    assert isinstance(numpy.sctypes, dict)


def test_pkg_resources_shim():
    with pytest.raises(_compat._DistributionNotFound):
        _compat._require('no-such-package-xyz>=1.0')
    assert _compat._require('numpy>=1.0') == []
    assert _compat._get_distribution('numpy').version == numpy.__version__


def test_chainer_trains_without_numpy_distutils_and_pkg_resources():
    """As on Python 3.12+ with NumPy 2 and setuptools without pkg_resources."""
    code = textwrap.dedent('''
        import sys
        sys.modules['numpy.distutils'] = None  # makes the import fail
        sys.modules['numpy.distutils.system_info'] = None
        sys.modules['pkg_resources'] = None
        import numpy
        import vae
        from vae import _compat
        import chainer
        assert {'numpy.distutils', 'pkg_resources'} <= set(_compat.APPLIED)
        numpy.random.seed(0)
        model = vae.VAE(784, 2, 16, 'softplus')
        opt = chainer.optimizers.Adam().setup(model)
        x = numpy.random.rand(8, 784).astype(numpy.float32)
        lf = model.get_loss_func(k=2)
        before = float(lf(x).array)
        for _ in range(20):
            opt.update(lf, x)
        after = float(lf(x).array)
        assert numpy.isfinite(after) and after < before, (before, after)
        print('ok', numpy.__version__, sorted(_compat.APPLIED))
    ''')
    result = subprocess.run([sys.executable, '-c', code], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('ok')
