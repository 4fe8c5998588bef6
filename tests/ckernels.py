"""The bodies of vae/kernels/elementwise.py compiled by the system C compiler, so that a
CPU test runs the very text a GPU compiles.

:func:`compile_kernel` takes CuPy's ``ElementwiseKernel`` arguments and
returns a function called as the kernel is (the inputs, then the outputs)
on NumPy arrays. The C function it builds loops over the elements with the
index ``i``; each parameter's name is a macro for its element
(``(a_p[i])``) or, for a ``raw`` parameter, for its pointer, so the body is
pasted unchanged. ``<tgmath.h>`` gives C the overloads CUDA C++ has
(``exp`` of a float is ``expf``), and ``-ffp-contract=off`` keeps each
operation rounded on its own, as NumPy's are. Arguments are broadcast as
CuPy broadcasts them and copied to contiguous arrays of the declared
types; the outputs are copied back.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy

from vae.kernels.elementwise import parse_params

C_TYPES = {'float32': 'float', 'float64': 'double', 'bool': 'bool',
           'int64': 'long long'}
_cache = {}  # source -> ctypes function
_folder = []


def compiler():
    """The system C compiler's path, or None."""
    return shutil.which(os.environ.get('CC', 'cc')) or shutil.which('gcc')


def source(in_params, out_params, body, name, t_dtype='float32'):
    """The C text of the kernel (``T`` is ``t_dtype``)."""
    params = parse_params(in_params) + parse_params(out_params)
    lines = ['#include <stdbool.h>', '#include <tgmath.h>',
             'typedef %s T;' % C_TYPES[t_dtype]]
    args = []
    for kind, param, raw in params:
        args.append('%s *%s_p' % ('T' if kind == 'T' else C_TYPES[kind],
                                  param))
        lines.append('#define %s %s' % (param, '%s_p' % param if raw
                                        else '(%s_p[i])' % param))
    lines += ['void %s(long long n, %s) {' % (name, ', '.join(args)),
              '  for (long long i = 0; i < n; i++) {',
              '    ' + body, '  }', '}']
    lines += ['#undef %s' % param for _, param, _ in params]
    return '\n'.join(lines) + '\n'


def _build(text, name):
    if text in _cache:
        return _cache[text]
    if not _folder:
        _folder.append(tempfile.mkdtemp(prefix='vae-ckernels-'))
    stem = os.path.join(_folder[0], name + '_' + hashlib.sha1(
        text.encode()).hexdigest()[:12])
    with open(stem + '.c', 'w') as f:
        f.write(text)
    cc = compiler()
    if cc is None:
        raise RuntimeError('no C compiler')
    subprocess.run([cc, '-std=c99', '-O2', '-fPIC', '-shared',
                    '-ffp-contract=off', '-o', stem + '.so', stem + '.c',
                    '-lm'], check=True, capture_output=True)
    function = getattr(ctypes.CDLL(stem + '.so'), name)
    function.restype = None
    _cache[text] = function
    return function


def compile_kernel(in_params, out_params, body, name):
    """A function ``f(*inputs, *outputs)`` that runs ``body`` compiled by
    the C compiler on NumPy arrays, writing the outputs in place."""
    ins, outs = parse_params(in_params), parse_params(out_params)
    params = ins + outs

    def run(*args):
        if len(args) != len(params):
            raise TypeError('%s takes %d arguments' % (name, len(params)))
        t_dtype = 'float32'
        for (kind, _, _), arg in zip(params, args):
            if kind == 'T':
                t_dtype = numpy.asarray(arg).dtype.name
                break
        function = _build(source(in_params, out_params, body, name,
                                 t_dtype), name)
        dtypes = [t_dtype if kind == 'T' else kind for kind, _, _ in params]
        shape = numpy.broadcast_shapes(*[
            numpy.shape(arg) for (_, _, raw), arg in zip(params, args)
            if not raw])
        n = int(numpy.prod(shape))
        buffers = []
        for (kind, _, raw), arg, dtype in zip(params, args, dtypes):
            a = numpy.asarray(arg)
            if not raw:
                a = numpy.broadcast_to(a, shape)
            buffers.append(numpy.array(a, dtype=dtype, order='C'))
        function(ctypes.c_longlong(n),
                 *[ctypes.c_void_p(b.ctypes.data) for b in buffers])
        for out, buffer in zip(args[len(ins):], buffers[len(ins):]):
            out[...] = buffer
    return run
