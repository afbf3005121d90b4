"""The CUDA backend: CuPy arrays, cuBLAS GEMMs and our own kernels from ``kernels/``.

This is the only module that imports CuPy, and it does so lazily: importing
mlp_gpu neither imports CuPy nor compiles a kernel.
"""
from __future__ import annotations

import functools

import numpy as np

from .base import Backend, BackendUnavailable


@functools.lru_cache(maxsize=1)
def _import_cupy():
    try:
        import cupy  # noqa: F401 -- the one guarded import of CuPy in mlp_gpu
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
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"cupy found no usable CUDA device ({type(exc).__name__}: {exc})"
    return None


class CupyBackend(Backend):
    """Arrays live on the current CUDA device; fused ops run as our kernels."""

    name = "cupy"

    def __init__(self):
        reason = unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(f"backend='cupy' cannot run here: {reason}. "
                                     "Use backend='numpy' or 'auto' to train on the CPU.")
        self.xp, _ = _import_cupy()

    def __repr__(self) -> str:
        return "CupyBackend()"

    def asarray(self, host, dtype=None):
        return self.xp.asarray(host, dtype=dtype)

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
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return {"backend": self.name, "device": name, "cupy": cp.__version__,
                "cuda_runtime": cp.cuda.runtime.runtimeGetVersion(), "numpy": np.__version__}
