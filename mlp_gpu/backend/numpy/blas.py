"""BLAS gemm called with every argument prepared once, on the BLAS NumPy itself runs on.

The f2py wrappers of ``scipy.linalg.blas`` take whole contiguous arrays and parse their arguments on
every call. A prepared product takes strided operands (a row stride per matrix, so a layer can write
into the first columns of a wider buffer) and costs one foreign call; alpha can be a shared cell that
the caller sets once per step.

Which library: the OpenBLAS inside NumPy's wheel where there is one (the library ``np.matmul`` and a
hand-written NumPy loop run on; it may be a newer OpenBLAS than SciPy's), else SciPy's BLAS through
the function pointers it exports for Cython (``scipy.linalg.cython_blas``, as Numba reads them). Both
take Fortran's gemm arguments, all by pointer; NumPy's OpenBLAS counts in 64-bit integers.
"""
from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np

_CELLS = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}
_PREFIX = {np.dtype(np.float32): "s", np.dtype(np.float64): "d"}


def numpy_openblas():
    """(library, its gemm symbol's format, integer type) of the OpenBLAS in NumPy's wheel, or None."""
    folder = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(folder.glob("libscipy_openblas64_*.so*")) + sorted(folder.glob("libopenblas64_*.so*")):
        try:
            lib = ctypes.CDLL(str(path))  # already loaded by NumPy: the same library, the same threads
        except OSError:
            continue
        for symbol in ("scipy_{}gemm_64_", "{}gemm_64_"):
            if hasattr(lib, symbol.format("s")) and hasattr(lib, symbol.format("d")):
                return lib, symbol, ctypes.c_int64
    return None


def scipy_blas():
    """(SciPy's cython_blas as a lookup, the gemm name's format, integer type)."""
    from scipy.linalg import cython_blas

    api = ctypes.pythonapi
    api.PyCapsule_GetName.restype, api.PyCapsule_GetName.argtypes = ctypes.c_char_p, [ctypes.py_object]
    api.PyCapsule_GetPointer.restype = ctypes.c_void_p
    api.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]

    class Capsules:
        def __getattr__(self, name):
            capsule = cython_blas.__pyx_capi__[name]
            return api.PyCapsule_GetPointer(capsule, api.PyCapsule_GetName(capsule))
    return Capsules(), "{}gemm", ctypes.c_int


LIBRARIES = {"numpy": numpy_openblas, "scipy": scipy_blas}


@functools.lru_cache(maxsize=None)
def _routine(library: str, dtype):
    """(gemm function, integer type) of ``library`` for ``dtype``; None where the library is not at hand."""
    found = LIBRARIES[library]()
    if found is None:
        return None
    lib, symbol, int_type = found
    function = getattr(lib, symbol.format(_PREFIX[np.dtype(dtype)]))
    address = function if isinstance(function, int) else ctypes.cast(function, ctypes.c_void_p).value
    return ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 13)(address), int_type


def library() -> str:
    """The library the prepared products run on: "numpy" (its wheel's OpenBLAS) or "scipy"."""
    return "numpy" if _routine("numpy", np.float32) is not None else "scipy"


def cell(dtype, value: float = 0.0):
    """A scalar the prepared products read when called: set ``.value`` to change it."""
    return _CELLS[np.dtype(dtype)](value)


def _row_major(x, arg: str, dtype) -> int:
    """x's row stride in elements; x must be a 2-D view with unit column stride, of ``dtype``."""
    if x.ndim != 2 or x.dtype != dtype or x.strides[1] != x.itemsize or x.strides[0] % x.itemsize \
            or x.strides[0] < x.shape[1] * x.itemsize:
        raise ValueError(f"gemm({arg}): expected a 2-D {np.dtype(dtype).name} view of rows with unit column stride, "
                         f"got shape {x.shape}, dtype {x.dtype}, strides {x.strides}")
    return max(1, x.strides[0] // x.itemsize)


def gemm(a, b, c, trans_a: bool = False, trans_b: bool = False, alpha=1.0, beta=0.0, using: str | None = None):
    """A call ``()`` doing c <- alpha op(a) op(b) + beta c in place, row-major views of one float dtype.

    ``alpha`` is a number or a ``cell`` read at each call; the arrays must outlive the returned call.
    ``using``: "numpy" or "scipy" (default: ``library()``).
    """
    dtype = c.dtype
    if dtype not in _CELLS:
        raise ValueError(f"gemm: expected float32 or float64 arrays, got {dtype}")
    ldc, lda, ldb = _row_major(c, "c", dtype), _row_major(a, "a", dtype), _row_major(b, "b", dtype)
    m, k = a.shape[::-1] if trans_a else a.shape
    k2, n = b.shape[::-1] if trans_b else b.shape
    if k != k2 or c.shape != (m, n):
        raise ValueError(f"gemm: op(a) {m}x{k} times op(b) {k2}x{n} does not give c's shape {c.shape}")
    run, integer = _routine(using or library(), dtype)
    # row-major c = op(a) op(b) is column-major c^T = op(b)^T op(a)^T over the same memory
    alpha = alpha if isinstance(alpha, ctypes._SimpleCData) else cell(dtype, alpha)
    keep = [ctypes.c_char(b"T" if trans_b else b"N"), ctypes.c_char(b"T" if trans_a else b"N"),
            integer(n), integer(m), integer(k), alpha, integer(ldb), integer(lda), cell(dtype, beta), integer(ldc)]
    ta, tb, m_, n_, k_, al, lb, la, be, lc = (ctypes.addressof(x) for x in keep)
    args = (ta, tb, m_, n_, k_, al, b.ctypes.data, lb, a.ctypes.data, la, be, c.ctypes.data, lc)

    def call():
        run(*args)
    call.keep = (keep, a, b, c)  # the cells and arrays the pointers point into
    call.macs = m * n * k
    call.args, call.address = args, ctypes.cast(run, ctypes.c_void_p).value  # for a compiled caller
    return call
