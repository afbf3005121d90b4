"""The communicator interface every engine implements, and the single-process engine.

A communicator is what data-parallel training needs from a transport: the process's rank and the
number of ranks, in-place collectives over arrays (all-reduce, broadcast), a barrier, and a way to
end every rank at once. Engines: ``SingleProcess`` (here; no dependency), ``MpiCommunicator``
(``mpi.py``, mpi4py) and ``NcclCommunicator`` (``mlp_gpu/backend/nccl_engine.py``: it holds device
buffers, so it lives with the backend).
"""
from __future__ import annotations

import os
import sys
import time

import numpy as np

OPS = ("sum", "average", "min", "max")


def check_op(op) -> str:
    if op not in OPS:
        raise ValueError(f"op: expected one of {', '.join(OPS)}, got {op!r}")
    return op


def check_root(root, size) -> int:
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= root < size:
        raise ValueError(f"root: expected a rank in [0, {size}), got {root!r}")
    return int(root)


class Communicator:
    """Rank, size and in-place collectives. Host engines take contiguous NumPy arrays;
    ``device_buffers`` engines (NCCL) take device arrays and pass host ones to their host engine.

    ``allreduce_seconds`` and ``allreduce_calls`` add up the time spent in :meth:`allreduce`
    (host time: for a device engine, the time to enqueue).
    """

    engine = "abstract"
    device_buffers = False

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.allreduce_seconds = 0.0
        self.allreduce_calls = 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, size={self.size})"

    @property
    def is_chief(self) -> bool:
        """Rank 0: the one that prints and writes files."""
        return self.rank == 0

    def allreduce(self, buf, op: str = "sum"):
        """buf <- op over every rank's buf, in place ("average" is the sum divided by size); returns buf."""
        check_op(op)
        start = time.perf_counter()
        self._allreduce(buf, op)
        self.allreduce_seconds += time.perf_counter() - start
        self.allreduce_calls += 1
        return buf

    def broadcast(self, buf, root: int = 0):
        """buf <- root's buf on every rank, in place; returns buf."""
        self._broadcast(buf, check_root(root, self.size))
        return buf

    def broadcast_object(self, obj, root: int = 0):
        """root's small picklable Python value (a seed, an id), returned on every rank."""
        return obj

    def barrier(self) -> None:
        """Return once every rank has called it."""

    def abort(self, message: str, code: int = 1):
        """Print ``message`` (naming this rank) on stderr, then end every rank of the job. Never returns."""
        report_failure(self, message)
        os._exit(code)

    def _allreduce(self, buf, op):
        pass  # one rank: every op is the identity

    def _broadcast(self, buf, root):
        pass


class SingleProcess(Communicator):
    """One process, no dependency: collectives are identities (today's behaviour)."""

    engine = "single"


def report_failure(comm, message: str) -> None:
    where = f"rank {comm.rank} of {comm.size}" if comm.size > 1 else "the only rank"
    sys.stderr.write(f"mlp_gpu: {where} failed; ending the job: {message}\n")
    sys.stderr.flush()
    sys.stdout.flush()
