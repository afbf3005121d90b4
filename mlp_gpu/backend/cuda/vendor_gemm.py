"""cuBLAS and cuBLASLt through nvmath-python's low-level bindings: the one module that uses nvmath.

CuPy's cuBLAS wrapper refuses to run while a stream is capturing (CuPy issue 6290); cuBLAS itself is
fine with capture. These calls go straight to the libraries on the caller's stream, so they can sit in
a CUDA graph. Everything that allocates or searches -- handles, workspaces, matmul descriptors, matrix
layouts, the heuristic's algorithm -- is made when an object is built, before any capture; a call then
only enqueues work. nvmath-python is optional (extras gpu / cuda13): ``unavailable_reason`` says why
the routes that need it cannot run.
"""
from __future__ import annotations

import functools
import weakref

import numpy as np

from .step_plan import SCALARS

WORKSPACE_BYTES = 32 << 20  # cuBLAS asks for a user workspace under graph capture; cuBLASLt takes ours
EPILOGUES = {"default": "DEFAULT", "relu_aux": "RELU_AUX", "drelu": "DRELU"}


@functools.lru_cache(maxsize=1)
def _bindings():
    try:
        from nvmath.bindings import cublas, cublasLt  # the one import of nvmath in mlp_gpu
    except Exception as exc:  # ImportError, or a library that will not load
        return None, f"nvmath-python's cuBLAS bindings are not importable ({type(exc).__name__}: {exc}); " \
                     "pip install nvmath-python (extras gpu / cuda13)"
    return (cublas, cublasLt), None


def unavailable_reason() -> str | None:
    """None when nvmath's cuBLAS and cuBLASLt bindings import; otherwise why not."""
    return _bindings()[1]


def _typed(value, dtype):
    buf = np.array([value], dtype=dtype)
    return buf, buf.ctypes.data, buf.itemsize


def _set(setter, obj, attr, value, dtype_of) -> np.ndarray:
    buf, ptr, size = _typed(int(value), dtype_of(attr))
    setter(obj, attr, ptr, size)
    return buf


def _alignment(ptr: int) -> int:
    return min(ptr & -ptr, 256) if ptr else 256


class CublasGemm:
    """Row-major GEMMs by cuBLAS sgemm on the current stream, capturable. Host scalars alpha = 1, beta = 0."""

    def __init__(self, xp, tf32: bool = False):
        (cublas, _), reason = _bindings()
        if reason:
            raise RuntimeError(reason)
        self._cublas, self._xp = cublas, xp
        self.handle = cublas.create()
        self._finalizer = weakref.finalize(self, cublas.destroy, self.handle)
        self.workspace = xp.empty(WORKSPACE_BYTES, xp.uint8)
        cublas.set_workspace(self.handle, self.workspace.data.ptr, WORKSPACE_BYTES)
        cublas.set_pointer_mode(self.handle, cublas.PointerMode.HOST)
        cublas.set_math_mode(self.handle, cublas.Math.TF32_TENSOR_OP_MATH if tf32 else cublas.Math.DEFAULT_MATH)
        self._scalars = np.array([1.0, 0.0], np.float32)

    def sgemm(self, args, a, b, out) -> None:
        """args: column_major_gemm's (transpose b?, transpose a?, m, n, k, ldb, lda, ldc)."""
        cublas = self._cublas
        t_b, t_a, m, n, k, ldb, lda, ldc = args
        ops = (cublas.Operation.N, cublas.Operation.T)
        cublas.set_stream(self.handle, self._xp.cuda.get_current_stream().ptr)
        alpha = self._scalars.ctypes.data
        cublas.sgemm(self.handle, ops[t_b], ops[t_a], m, n, k, alpha, b.data.ptr, ldb, a.data.ptr, lda,
                     alpha + 4, out.data.ptr, ldc)


class LtContext:
    """A cuBLASLt handle and workspace shared by the calls of one backend."""

    def __init__(self, xp, tf32: bool = False):
        (cublas, lt), reason = _bindings()
        if reason:
            raise RuntimeError(reason)
        self.cublas, self.lt, self.xp, self.tf32 = cublas, lt, xp, tf32
        self.handle = lt.create()
        self._finalizer = weakref.finalize(self, lt.destroy, self.handle)
        self.workspace = xp.empty(WORKSPACE_BYTES, xp.uint8)

    def prepare(self, gemm, arrays) -> "LtMatmul":
        return LtMatmul(self, gemm, arrays)


class LtMatmul:
    """One step_plan.LtGemm made ready: descriptor, layouts, algorithm. Calling it enqueues the GEMM.

    Raises LtUnsupported when cuBLASLt's heuristic offers no algorithm for it.
    """

    def __init__(self, ctx: LtContext, gemm, arrays):
        cublas, lt, f32 = ctx.cublas, ctx.lt, 0  # 0: CUDA_R_32F
        self.ctx, self.gemm = ctx, gemm
        compute = cublas.ComputeType.COMPUTE_32F_FAST_TF32 if ctx.tf32 else cublas.ComputeType.COMPUTE_32F
        self.desc = lt.matmul_desc_create(compute, f32)
        op = (cublas.Operation.N, cublas.Operation.T)
        settings = [("TRANSA", op[gemm.trans_a]), ("TRANSB", op[gemm.trans_b]),
                    ("POINTER_MODE", lt.PointerMode.DEVICE), ("EPILOGUE", lt.Epilogue[EPILOGUES[gemm.epilogue]])]
        if gemm.aux is not None:
            settings += [("EPILOGUE_AUX_POINTER", arrays[gemm.aux].data.ptr), ("EPILOGUE_AUX_LD", gemm.aux_ld)]
        self._attrs = [_set(lt.matmul_desc_set_attribute, self.desc, lt.MatmulDescAttribute[name], value,
                            lt.get_matmul_desc_attribute_dtype) for name, value in settings]
        shapes = {"a": ((gemm.k, gemm.m) if gemm.trans_a else (gemm.m, gemm.k), gemm.lda),
                  "b": ((gemm.n, gemm.k) if gemm.trans_b else (gemm.k, gemm.n), gemm.ldb),
                  "d": ((gemm.m, gemm.n), gemm.ldd)}
        self.layouts = {key: lt.matrix_layout_create(f32, rows, cols, ld) for key, ((rows, cols), ld) in shapes.items()}
        self.ptrs = {key: arrays[getattr(gemm, key)].data.ptr for key in "abd"}
        scalars = arrays["scalars"]
        self.alpha = scalars.data.ptr + 4 * SCALARS[gemm.alpha]
        self.beta = scalars.data.ptr + 4 * SCALARS[gemm.beta]
        self._finalizer = weakref.finalize(self, _destroy, lt, self.desc, list(self.layouts.values()))
        self.algo = self._heuristic(gemm)

    def _heuristic(self, gemm) -> np.ndarray:
        lt, ctx = self.ctx.lt, self.ctx
        pref = lt.matmul_preference_create()
        try:
            pattr, dtype = lt.MatmulPreferenceAttribute, lt.get_matmul_preference_attribute_dtype
            set_pref = lt.matmul_preference_set_attribute
            _set(set_pref, pref, pattr.MAX_WORKSPACE_BYTES, WORKSPACE_BYTES, dtype)
            for key, name in (("a", "A"), ("b", "B"), ("d", "C"), ("d", "D")):
                _set(set_pref, pref, pattr[f"MIN_ALIGNMENT_{name}_BYTES"], _alignment(self.ptrs[key]), dtype)
            results = np.zeros(1, dtype=lt.matmul_heuristic_result_dtype)
            found = np.zeros(1, np.int32)
            lt.matmul_algo_get_heuristic(ctx.handle, self.desc, self.layouts["a"], self.layouts["b"],
                                         self.layouts["d"], self.layouts["d"], pref, 1, results.ctypes.data,
                                         found.ctypes.data)
        except Exception as exc:
            raise LtUnsupported(f"cuBLASLt refused {describe(gemm)}: {type(exc).__name__}: {exc}") from None
        finally:
            lt.matmul_preference_destroy(pref)
        if found[0] < 1:
            raise LtUnsupported(f"cuBLASLt has no algorithm for {describe(gemm)}")
        return results

    def __call__(self) -> None:
        ctx, lay, p = self.ctx, self.layouts, self.ptrs
        ctx.lt.matmul(ctx.handle, self.desc, self.alpha, p["a"], lay["a"], p["b"], lay["b"], self.beta,
                      p["d"], lay["d"], p["d"], lay["d"], self.algo.ctypes.data, ctx.workspace.data.ptr,
                      WORKSPACE_BYTES, ctx.xp.cuda.get_current_stream().ptr)


class LtUnsupported(RuntimeError):
    """cuBLASLt offers no algorithm for a call of the plan (type, epilogue or alignment)."""


def describe(gemm) -> str:
    return (f"{'T' if gemm.trans_a else 'N'}{'T' if gemm.trans_b else 'N'} m={gemm.m} n={gemm.n} k={gemm.k} "
            f"epilogue {gemm.epilogue}")


def _destroy(lt, desc, layouts):
    for layout in layouts:
        lt.matrix_layout_destroy(layout)
    lt.matmul_desc_destroy(desc)
