"""cuBLAS for a captured CUDA graph: CuPy refuses its own cuBLAS calls while a
stream captures, so the products of the graph step go through a cuBLAS
handle of this module's, bound to the capturing stream with a fixed
workspace, through NVIDIA's bindings (``nvmath-python``, the ``gpu-graph``
extra). cuBLAS is column-major; :class:`CublasDot` computes the row-major
products of :mod:`vae.kernels.fused` by swapping the operands.
"""
import numpy

_F32 = numpy.float32
#: Bytes of the cuBLAS workspace bound to the capturing stream.
WORKSPACE_BYTES = 32 << 20


def cublas_reason():
    """Why nvmath-python's cuBLAS cannot serve the current device, or None.

    Importing the bindings succeeds without a driver or a libcublas (they
    load the library lazily), so a handle is created and destroyed here:
    a broken install then falls back with a note, rather than failing at
    the first iteration.
    """
    try:
        from nvmath.bindings import cublas
    except ImportError:
        return ('the CUDA-graph path needs nvmath-python (pip install '
                'nvmath-python, or the extra .[gpu-graph])')
    try:
        handle = cublas.create()
    except Exception as e:  # cuBLASError, a missing library, no driver
        return ('nvmath-python cannot create a cuBLAS handle (%s: %s)'
                % (type(e).__name__, e))
    cublas.destroy(handle)
    return None


def _pointer(array):
    """Device address of ``array``'s first element."""
    return array.data.ptr


def _operand(a):
    """``(transposed, base)``: ``a`` is ``base`` or ``base.T`` with ``base``
    C-contiguous."""
    if a.flags.c_contiguous:
        return False, a
    if a.T.flags.c_contiguous:
        return True, a.T
    raise ValueError('dot needs C-contiguous operands or their transposes')


class CublasDot(object):
    """``dot(a, b, out=None)`` for float32 matrices through a cuBLAS handle
    of its own, bound to ``stream``, which a CUDA graph can capture.

    cuBLAS is column-major: a C-contiguous (r, c) array is, to it, the
    transposed (c, r) matrix with leading dimension c. So the row-major
    ``C = op(A) @ op(B)`` is the column-major ``C^T = op(B)^T @ op(A)^T``:
    ``sgemm(op_B, op_A, n, m, k, 1, B, ldb, A, lda, 0, C, n)`` with each
    leading dimension the base array's row length.
    """

    def __init__(self, xp, stream):
        from nvmath.bindings import cublas
        self._xp = xp
        self._cublas = cublas
        self._handle = cublas.create()
        cublas.set_stream(self._handle, stream.ptr)
        self._workspace = xp.empty(WORKSPACE_BYTES, dtype=numpy.uint8)
        cublas.set_workspace(self._handle, _pointer(self._workspace),
                             WORKSPACE_BYTES)
        # alpha = 1 and beta = 0, read from host memory at each call
        self._scalars = numpy.array([1.0, 0.0], dtype=_F32)
        self._one = self._scalars.ctypes.data
        self._zero = self._one + self._scalars.itemsize

    def __call__(self, a, b, out=None):
        (m, k), (k2, n) = a.shape, b.shape
        if k != k2:
            raise ValueError('dot: shapes %s and %s do not align'
                             % (a.shape, b.shape))
        transpose_a, base_a = _operand(a)
        transpose_b, base_b = _operand(b)
        if out is None:
            out = self._xp.empty((m, n), dtype=_F32)
        op_n, op_t = 0, 1  # CUBLAS_OP_N, CUBLAS_OP_T
        self._cublas.sgemm(
            self._handle, op_t if transpose_b else op_n,
            op_t if transpose_a else op_n, n, m, k, self._one,
            _pointer(base_b), base_b.shape[1], _pointer(base_a),
            base_a.shape[1], self._zero, _pointer(out), n)
        return out

    def __del__(self):
        handle = getattr(self, '_handle', None)
        if handle is not None:
            self._cublas.destroy(handle)
