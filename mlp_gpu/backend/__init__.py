"""Backends: the only part of mlp_gpu that knows which device it runs on.

``get_backend`` picks one per model, never at import, so a NumPy and a CuPy
model can live side by side in one process (the parity tests rely on it).
"""
from __future__ import annotations

import gc
import logging
import os
import sys

from .base import Backend, BackendUnavailable
from .numpy.backend import NumpyBackend

log = logging.getLogger("mlp_gpu")

__all__ = ["Backend", "BackendUnavailable", "NumpyBackend", "get_backend", "available_backends", "use_local_device",
           "clear_session"]

_NAMES = ("auto", "numpy", "cupy")


def get_backend(name: str | Backend | None = None, **options) -> Backend:
    """Return a backend by name: ``"auto"``, ``"numpy"`` or ``"cupy"``.

    ``None`` reads the environment variable ``MLP_GPU_BACKEND`` (default
    ``"auto"``). ``"auto"`` takes CuPy when it imports and a device answers,
    otherwise NumPy, logging one line that says why. ``"cupy"`` without a usable
    GPU raises :class:`BackendUnavailable` with the reason. ``options`` go to the
    CuPy backend (``graph``, ``tf32``, ``gemm``, ``steps_per_graph``).
    """
    if isinstance(name, Backend):
        return name
    what = "backend"
    if name is None:  # set but empty (MLP_GPU_BACKEND= in a shell) means unset, as for most tools
        name, what = os.environ.get("MLP_GPU_BACKEND", "").strip() or "auto", "backend (env MLP_GPU_BACKEND)"
    if not isinstance(name, str) or name.strip().lower() not in _NAMES:
        raise ValueError(f"{what}: expected one of {', '.join(_NAMES)}, got {name!r}")
    name = name.strip().lower()
    if name == "numpy":
        return NumpyBackend()
    from .cuda import backend as cupy_backend  # imports cupy lazily, guarded

    if name == "cupy":
        return cupy_backend.CupyBackend(**options)
    reason = cupy_backend.unavailable_reason()
    if reason is None:
        return cupy_backend.CupyBackend(**options)
    log.info("backend auto: using numpy (%s)", reason)
    return NumpyBackend()


def available_backends() -> dict[str, str | None]:
    """Map each concrete backend name to None (usable) or the reason it is not."""
    from .cuda import backend as cupy_backend

    return {"numpy": None, "cupy": cupy_backend.unavailable_reason()}


def use_local_device(local_rank: int) -> None:
    """One process per GPU: make GPU (local_rank mod count) this process's device, where CuPy has GPUs.

    Called by ``mlp_gpu.distributed.init`` before any model allocates; a no-op without a GPU.
    """
    from .cuda import backend as cupy_backend

    if cupy_backend.unavailable_reason() is None:
        cupy_backend.use_device_for_rank(local_rank)


def clear_session(free_memory: bool = True) -> None:
    """Keras' ``clear_session``: drop unreachable models and, with ``free_memory``, hand the device memory
    CuPy keeps cached for reuse (its memory pools) back to the driver. Layer names need no reset here:
    each model counts its own. Imports nothing new: without CuPy loaded there is no device memory."""
    gc.collect()
    cupy = sys.modules.get("cupy")
    if free_memory and cupy is not None:
        cupy.get_default_memory_pool().free_all_blocks()
        cupy.get_default_pinned_memory_pool().free_all_blocks()
