"""Backends: the only part of mlp_gpu that knows which device it runs on.

``get_backend`` picks one per model, never at import, so a NumPy and a CuPy
model can live side by side in one process (the parity tests rely on it).
"""
from __future__ import annotations

import logging
import os

from .base import Backend, BackendUnavailable
from .cuda import backend as cupy_backend  # imports no CuPy: CupyBackend does, guarded, when made
from .keras_backend import (backend, clear_session, epsilon, floatx, get_value, set_epsilon, set_floatx,
                            set_value)
from .numpy.backend import NumpyBackend

log = logging.getLogger("mlp_gpu")

__all__ = ["Backend", "BackendUnavailable", "NumpyBackend", "get_backend", "available_backends", "use_local_device",
           "clear_session", "floatx", "set_floatx", "epsilon", "set_epsilon", "backend", "get_value", "set_value"]

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
    from_env = what != "backend" and os.environ.get("MLP_GPU_BACKEND", "").strip()
    asked = f"MLP_GPU_BACKEND={name}" if from_env else "auto" if name == "auto" else "asked for"
    if name == "numpy":
        return _chosen(NumpyBackend(), asked)
    if name == "cupy":
        return _chosen(cupy_backend.CupyBackend(**options), asked)
    reason = cupy_backend.unavailable_reason()
    if reason is None:
        log.info("backend auto: using cupy (CuPy imports and a GPU answers)")
        return _chosen(cupy_backend.CupyBackend(**options), f"{asked}: CuPy imports and a GPU answers")
    log.info("backend auto: using numpy (%s)", reason)
    return _chosen(NumpyBackend(), f"{asked}: {reason}")


def _chosen(backend: Backend, why: str) -> Backend:
    backend.chosen_because = why  # fit prints it once under verbose=1
    return backend


def available_backends() -> dict[str, str | None]:
    """Map each concrete backend name to None (usable) or the reason it is not."""
    return {"numpy": None, "cupy": cupy_backend.unavailable_reason()}


def use_local_device(local_rank: int) -> None:
    """One process per GPU: make GPU (local_rank mod count) this process's device, where CuPy has GPUs.

    Called by ``mlp_gpu.distributed.init`` before any model allocates; a no-op without a GPU.
    """
    if cupy_backend.unavailable_reason() is None:
        cupy_backend.use_device_for_rank(local_rank)
