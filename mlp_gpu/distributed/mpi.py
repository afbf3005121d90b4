"""The MPI engine, through mpi4py (``pip install mpi4py mpich``, or an MPI the cluster provides)."""
from __future__ import annotations

import functools

import numpy as np

from .communicator import Communicator, report_failure


@functools.lru_cache(maxsize=1)
def import_mpi():
    """mpi4py's MPI module (importing it initializes MPI), or an ImportError that says how to get it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"the MPI engine needs mpi4py and an MPI library ({exc}); install them with "
                          "`pip install 'mlp_gpu[distributed]'` (mpi4py and mpich from PyPI)") from None
    return MPI


def _host_buffer(buf, what):
    if not isinstance(buf, np.ndarray) or not buf.flags.c_contiguous:
        raise TypeError(f"{what}: the MPI engine takes a C-contiguous NumPy array, got {type(buf).__name__}"
                        + ("" if not isinstance(buf, np.ndarray) else " that is not contiguous"))
    return buf


class MpiCommunicator(Communicator):
    """Collectives over ``MPI.COMM_WORLD`` (or the given mpi4py communicator) on host NumPy arrays."""

    engine = "mpi"

    def __init__(self, comm=None):
        MPI = import_mpi()
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)  # the ranks on this machine
        super().__init__(self.comm.Get_rank(), self.comm.Get_size(), node.Get_rank())
        node.Free()
        self._ops = {"sum": MPI.SUM, "average": MPI.SUM, "min": MPI.MIN, "max": MPI.MAX}

    def _allreduce(self, buf, op):
        _host_buffer(buf, "allreduce(buf)")
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self._ops[op])
        if op == "average":
            buf /= self.size

    def _broadcast(self, buf, root):
        self.comm.Bcast(_host_buffer(buf, "broadcast(buf)"), root=root)

    def broadcast_object(self, obj, root=0):
        return self.comm.bcast(obj, root=root)

    def barrier(self):
        self.comm.Barrier()

    def abort(self, message, code=1):
        report_failure(self, message)
        self.comm.Abort(code)  # the launcher (mpiexec) ends every other rank
