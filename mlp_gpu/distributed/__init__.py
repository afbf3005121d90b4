"""Data-parallel training across processes, GPUs and machines, on MPI and NCCL.

    import mlp_gpu
    comm = mlp_gpu.distributed.init()       # before building models: picks the engine and, on GPUs, the device
    model = ...                             # every rank builds the same model
    model.fit(x, y, batch_size=256)         # 256 rows per step in all, split across the ranks

Start it with ``mpiexec -n 4 python train.py`` (or ``mlp-gpu train --workers 4``). The engine comes from
how the program was started (under an MPI launcher: MPI, or NCCL where the CuPy backend has a GPU; else
one process) or explicitly: ``init("mpi")``, ``init("nccl")``, ``init("single")``. ``fit(distribute=...)``
takes an engine name, a communicator or a :class:`DataParallel` for the per-rank batch option.
"""
from __future__ import annotations

import logging
import sys
import traceback

from .communicator import OPS, Communicator, SingleProcess
from .launch import launcher_variable, spawn_workers
from .parallel import DataParallel

log = logging.getLogger("mlp_gpu")

ENGINES = ("auto", "single", "mpi", "nccl")
_current: Communicator | None = None

__all__ = ["init", "current", "get_communicator", "launcher_variable", "rank", "size", "is_chief", "Communicator",
           "SingleProcess", "DataParallel", "ENGINES", "OPS", "spawn_workers"]


def _choose_engine() -> tuple[str, str]:
    variable = launcher_variable()
    if variable is None:
        return "single", "no MPI launcher variable set"
    from ..backend import available_backends

    gpu = available_backends()["cupy"]
    if gpu is None:
        return "nccl", f"{variable} is set and the CuPy backend has a GPU"
    return "mpi", f"{variable} is set; no GPU for NCCL ({gpu})"


def _make(engine: str) -> Communicator:
    """The engine's communicator; with MPI under it, each rank first takes its own GPU (if any)."""
    if engine == "single":
        return SingleProcess()
    from ..backend import use_local_device
    from .mpi import MpiCommunicator

    host = MpiCommunicator() if engine == "mpi" or launcher_variable() is not None else SingleProcess()
    use_local_device(host.local_rank)
    if engine == "mpi":
        return host
    from ..backend.cuda.nccl import NcclCommunicator

    return NcclCommunicator(host)


def init(engine: str = "auto") -> Communicator:
    """Start the communicator of this process once (later calls return it) and log which engine it is.

    ``"auto"``: MPI under an MPI launcher (NCCL instead where the CuPy backend has a GPU), else one
    process. With several ranks each process takes its own GPU (by its rank on the machine), and an
    uncaught exception on one rank ends every rank after printing it, instead of leaving them waiting.
    """
    global _current
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if _current is not None:
        if engine not in ("auto", _current.engine):
            raise RuntimeError(f"distributed.init({engine!r}): this process already runs the "
                               f"{_current.engine!r} engine; init once, before training")
        return _current
    reason = "asked for"
    if engine == "auto":
        engine, reason = _choose_engine()
    comm = _make(engine)
    _current = comm
    if comm.size > 1:
        sys.excepthook = _abort_on_uncaught
    log.info("distributed: engine %s (%s), rank %d of %d", comm.engine, reason, comm.rank, comm.size)
    return comm


def _abort_on_uncaught(kind, value, tb):
    message = "".join(traceback.format_exception(kind, value, tb)).rstrip()
    _current.abort(message)


def current() -> Communicator | None:
    """The communicator ``init`` started, or None before it."""
    return _current


def get_communicator() -> Communicator:
    """This process's communicator (``init()`` with the engine chosen from how it was started)."""
    return _current if _current is not None else init()


def rank() -> int:
    return get_communicator().rank


def size() -> int:
    return get_communicator().size


def is_chief() -> bool:
    """True on rank 0, the rank that prints and writes files."""
    return get_communicator().is_chief
