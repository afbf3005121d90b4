"""The CUDA backend: CuPy arrays, cuBLAS or our GEMM, our fused kernels, CUDA graphs.

This is the only module that imports CuPy, and it does so lazily: importing
mlp_gpu neither imports CuPy nor compiles a kernel. Kernels compile on first
launch (one ``cupy.RawModule`` per file, memoized).
"""
from __future__ import annotations

import functools
import logging
import os

import numpy as np

from . import kernels
from .base import BackendUnavailable, DeviceMemoryError, device_memory_message
from .cuda_ops import CudaOps

log = logging.getLogger("mlp_gpu")
_MODULES = {}  # (device id, kernel file) -> cupy.RawModule, compiled on first launch


@functools.lru_cache(maxsize=1)
def _import_cupy():
    try:
        import cupy  # noqa: F401 -- the one import of CuPy in mlp_gpu
    except Exception as exc:  # ImportError, or a broken CUDA install raising anything
        return None, f"cupy is not importable ({type(exc).__name__}: {exc})"
    return cupy, None


@functools.lru_cache(maxsize=1)
def unavailable_reason() -> str | None:
    """None when CuPy imports and a CUDA device answers; otherwise why not."""
    cupy, reason = _import_cupy()
    if cupy is None:
        return reason
    try:
        if not cupy.is_available():
            return "cupy imported but found no CUDA device (cupy.is_available() is False)"
    except Exception as exc:
        return f"cupy found no usable CUDA device ({type(exc).__name__}: {exc})"
    return None


def _env_flag(name, default):
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() not in ("0", "false", "no", "off", "")


def column_major_gemm(a_shape, b_shape, out_shape, trans_a, trans_b):
    """cuBLAS arguments for row-major out = op(a) @ op(b), all C-contiguous.

    A row-major matrix is its transpose in column-major, so cuBLAS computes out^T = op(b)^T op(a)^T:
    b goes first. Returns (transpose b?, transpose a?, m, n, k, ldb, lda, ldc) in cuBLAS' order.
    """
    rows, cols = out_shape
    k = a_shape[0] if trans_a else a_shape[1]
    return trans_b, trans_a, cols, rows, k, b_shape[1], a_shape[1], cols


class CupyBackend(CudaOps):
    """Arrays on the current CUDA device; the fused ops are our kernels.

    graph: capture each training step as a CUDA graph and replay it (env MLP_GPU_GRAPH, default on).
    tf32:  let cuBLAS use TF32 tensor cores for float32 GEMMs (env MLP_GPU_TF32, default off).
    gemm:  "auto" (cuBLAS eagerly; in graphs cuBLAS if it can be captured, else ours), "cublas" or "kernel".
    """

    name = "cupy"

    def __init__(self, graph: bool | None = None, tf32: bool | None = None, gemm: str = "auto"):
        reason = unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"backend='cupy' cannot run here: {reason}. "
                                     "Use backend='numpy' or 'auto' to train on the CPU.")
        if gemm not in ("auto", "cublas", "kernel"):
            raise ValueError(f"gemm: expected 'auto', 'cublas' or 'kernel', got {gemm!r}")
        self.xp, _ = _import_cupy()
        self.graph = _env_flag("MLP_GPU_GRAPH", True) if graph is None else bool(graph)
        self.tf32 = _env_flag("MLP_GPU_TF32", False) if tf32 is None else bool(tf32)
        self.gemm_choice = gemm
        self.gemm = "kernel" if gemm == "kernel" else "cublas"
        self._scalars = np.array([1.0, 0.0], np.float32)  # alpha, beta for cuBLAS (host pointer mode)
        self._capture_gemm = None

    def __repr__(self) -> str:
        return f"CupyBackend(graph={self.graph}, tf32={self.tf32}, gemm={self.gemm_choice!r})"

    # ---- memory -----------------------------------------------------------------
    def _allocating(self, make, shape, dtype):
        try:
            return make()
        except self.xp.cuda.memory.OutOfMemoryError:
            free, total = self.xp.cuda.runtime.memGetInfo()
            free += self.xp.get_default_memory_pool().free_bytes()  # cached blocks are reusable
            raise DeviceMemoryError(device_memory_message(shape, dtype, free, total)) from None

    def empty(self, shape, dtype=np.float32):
        return self._allocating(lambda: self.xp.empty(shape, dtype=dtype), shape, dtype)

    def zeros(self, shape, dtype=np.float32):
        return self._allocating(lambda: self.xp.zeros(shape, dtype=dtype), shape, dtype)

    def asarray(self, host, dtype=None):
        shape, dt = np.shape(host), dtype or getattr(host, "dtype", np.float32)
        return self._allocating(lambda: self.xp.asarray(host, dtype=dtype), shape, dt)

    def to_host(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def copy_from_host(self, dst, host) -> None:
        dst.set(np.ascontiguousarray(host, dtype=dst.dtype))

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def memory_bytes(self) -> int:
        return int(self.xp.get_default_memory_pool().used_bytes())

    def describe(self) -> dict:
        cp = self.xp
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return {"backend": self.name, "device": name, "cupy": cp.__version__,
                "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "graph": self.graph, "tf32": self.tf32,
                "gemm": self.gemm_choice, "numpy": np.__version__}

    # ---- kernels ----------------------------------------------------------------
    def _function(self, name):
        path = kernels.kernel_index()[name]
        key = (self.xp.cuda.Device().id, path)  # one compiled module per file and device, per process
        module = _MODULES.get(key)
        if module is None:
            module = _MODULES[key] = self.xp.RawModule(code=kernels.source(path), options=("--std=c++17",))
        return module.get_function(name)

    def launch(self, name, grid, block, args):
        self._function(name)(grid, block, args)

    def _load_all(self):
        """Compile and load every kernel: module loading must not happen inside a graph capture."""
        for name in kernels.kernel_index():
            self._function(name)

    def cublas_matmul(self, a, b, out, trans_a, trans_b):
        """Row-major out = op(a) @ op(b) as the column-major product out^T = op(b)^T op(a)^T."""
        from cupy_backends.cuda.libs import cublas

        handle = self.xp.cuda.device.get_cublas_handle()
        cublas.setStream(handle, self.xp.cuda.get_current_stream().ptr)
        tf32 = getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH", 3)
        cublas.setMathMode(handle, tf32 if self.tf32 else getattr(cublas, "CUBLAS_DEFAULT_MATH", 0))
        t_b, t_a, m, n, k, ldb, lda, ldc = column_major_gemm(a.shape, b.shape, out.shape, trans_a, trans_b)
        ops = (cublas.CUBLAS_OP_N, cublas.CUBLAS_OP_T)
        alpha = self._scalars.ctypes.data
        cublas.sgemm(handle, ops[t_b], ops[t_a], m, n, k, alpha, b.data.ptr, ldb, a.data.ptr, lda,
                     alpha + 4, out.data.ptr, ldc)
        return out

    # ---- graphs -----------------------------------------------------------------
    def _choose_capture_gemm(self) -> str:
        """Can cuBLAS run inside stream capture with this CuPy? Try it once on a tiny product."""
        if self.gemm_choice != "auto":
            return self.gemm_choice
        cp = self.xp
        a = cp.ones((16, 16), cp.float32)
        c = cp.zeros((16, 16), cp.float32)
        self.cublas_matmul(a, a, c, False, False)  # eagerly first: creates the handle outside capture
        c.fill(0)
        stream = cp.cuda.Stream(non_blocking=True)
        try:
            with stream:
                stream.begin_capture()
                try:
                    self.cublas_matmul(a, a, c, False, False)
                finally:
                    graph = stream.end_capture()
            graph.launch(stream)
            stream.synchronize()
            ok = bool((c == 16).all())
            reason = "cuBLAS ran inside stream capture" if ok else "cuBLAS captured but replay gave wrong values"
        except Exception as exc:
            ok, reason = False, f"cuBLAS refused stream capture ({type(exc).__name__}: {exc})"
        choice = "cublas" if ok else "kernel"
        log.info("graph mode GEMM: %s (%s)", "cuBLAS" if ok else "our sgemm_strided kernel", reason)
        return choice

    def make_runner(self, step, rows: int):
        """Capture step() once as a CUDA graph; return a replay. Eager (step itself) when graphs are off."""
        if not self.graph:
            return step
        cp = self.xp
        self._load_all()
        if self._capture_gemm is None:
            self._capture_gemm = self._choose_capture_gemm()
        stream = cp.cuda.Stream(non_blocking=True)
        eager_gemm, self.gemm = self.gemm, self._capture_gemm
        try:
            with stream:
                stream.begin_capture()
                try:
                    step()
                finally:
                    graph = stream.end_capture()
        finally:
            self.gemm = eager_gemm
        # Replays go on the current stream, the one every eager op of this backend uses.
        return graph.launch
