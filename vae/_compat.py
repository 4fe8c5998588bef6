"""What Chainer 7.8.1 (2022, its last release) needs from older NumPy,
Python and setuptools, supplied before Chainer is first imported.

Each shim fills one gap and does nothing where the real thing exists, so on
the pinned stack (Python 3.11, NumPy 1.26, setuptools < 74) this module
changes nothing. Nothing else in the project works around versions.

- ``numpy.sctypes`` (removed in NumPy 2.0): read at import time by
  ``chainer.functions.array.as_strided`` to map item sizes to int types.
- ``numpy.distutils.system_info`` (removed for Python >= 3.12, and broken by
  setuptools >= 74): imported by ``chainer._environment_check``, which calls
  ``get_info('blas_opt')`` only on macOS to warn about Accelerate.
- ``pkg_resources`` (deprecated, gone from recent setuptools): imported by
  ``chainer._environment_check`` to compare optional packages (CuPy, ...)
  with the versions Chainer was tested with; it only ever warns.
"""
import importlib
import importlib.metadata
import sys
import types
import warnings

import numpy

APPLIED = []  # names of the shims this process needed, for tests and reports


def _sctypes():
    """The NumPy 1.x ``sctypes`` table, built from the scalar types."""
    return {
        'int': [numpy.int8, numpy.int16, numpy.int32, numpy.int64],
        'uint': [numpy.uint8, numpy.uint16, numpy.uint32, numpy.uint64],
        'float': [numpy.float16, numpy.float32, numpy.float64,
                  numpy.longdouble],
        'complex': [numpy.complex64, numpy.complex128, numpy.clongdouble],
        'others': [bool, object, bytes, str, numpy.void],
    }


def _ensure_sctypes():
    try:
        numpy.sctypes
    except AttributeError:
        numpy.sctypes = _sctypes()
        APPLIED.append('numpy.sctypes')


def _ensure_numpy_distutils():
    try:
        with warnings.catch_warnings():
            # NumPy deprecates numpy.distutils; Chainer imports it regardless
            warnings.simplefilter('ignore', DeprecationWarning)
            importlib.import_module('numpy.distutils.system_info')
        return
    except Exception:  # ModuleNotFoundError, or distutils.msvccompiler gone
        pass
    for name in [m for m in sys.modules if m.startswith('numpy.distutils')]:
        del sys.modules[name]  # a half-imported package would shadow ours
    package = types.ModuleType('numpy.distutils')
    package.__path__ = []
    system_info = types.ModuleType('numpy.distutils.system_info')
    # No BLAS details: Chainer then skips its macOS Accelerate warning.
    system_info.get_info = lambda name, notfound_action=0: {}
    package.system_info = system_info
    sys.modules['numpy.distutils'] = package
    sys.modules['numpy.distutils.system_info'] = system_info
    numpy.distutils = package
    APPLIED.append('numpy.distutils')


class _DistributionNotFound(Exception):
    pass


class _VersionConflict(Exception):
    pass


def _require(requirement):
    """``pkg_resources.require`` for one 'name<specifier>' string."""
    name = requirement
    for i, char in enumerate(requirement):
        if char in '<>=!~ ;[':
            name = requirement[:i]
            break
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        raise _DistributionNotFound(requirement)
    # Chainer only warns on a conflict; without the `packaging` library
    # to compare specifiers we report the package as found.
    return []


def _get_distribution(name):
    return types.SimpleNamespace(
        project_name=name, version=importlib.metadata.version(name))


def _ensure_pkg_resources():
    try:
        importlib.import_module('pkg_resources')
        return
    except ImportError:
        pass
    module = types.ModuleType('pkg_resources')
    module.require = _require
    module.get_distribution = _get_distribution
    module.DistributionNotFound = _DistributionNotFound
    module.VersionConflict = _VersionConflict
    sys.modules['pkg_resources'] = module
    APPLIED.append('pkg_resources')


def apply():
    """Install the shims this interpreter needs (idempotent)."""
    if 'chainer' in sys.modules:
        return  # too late to matter, and Chainer imported fine
    _ensure_sctypes()
    _ensure_numpy_distutils()
    _ensure_pkg_resources()
