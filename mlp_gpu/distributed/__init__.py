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

from .communicator import OPS, Communicator, SingleProcess
from .engine import ENGINES, current, get_communicator, init, is_chief, rank, size
from .launch import launcher_variable, spawn_workers
from .parallel import DataParallel

__all__ = ["init", "current", "get_communicator", "launcher_variable", "rank", "size", "is_chief", "Communicator",
           "SingleProcess", "DataParallel", "ENGINES", "OPS", "spawn_workers"]
