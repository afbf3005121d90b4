"""The NCCL engine: collectives on device arrays through CuPy's ``cupy.cuda.nccl``, one process per GPU.

NCCL's unique id is made on rank 0 and broadcast over the host communicator (MPI, or nothing with one
rank); host arrays (epoch metrics, seeds) keep going through that host communicator. Collectives are
enqueued on CuPy's current stream, the training stream, so a captured step holds its all-reduce
(NCCL 2.9 and later). It lives under backend/ because it is the part that knows about devices.
"""
from __future__ import annotations

import numpy as np

from ...distributed.communicator import Communicator
from ..base import BackendUnavailable
from .backend import _import_cupy, unavailable_reason

# The names this engine uses from cupy.cuda.nccl (tests check them against the installed CuPy).
NCCL_FUNCTIONS = ("get_unique_id", "get_version", "NcclCommunicator")
NCCL_METHODS = ("allReduce", "bcast", "abort", "destroy", "device_id", "rank_id", "size")
NCCL_CONSTANTS = ("NCCL_SUM", "NCCL_AVG", "NCCL_MIN", "NCCL_MAX", "NCCL_FLOAT32", "NCCL_FLOAT64",
                  "NCCL_INT32", "NCCL_INT64")
CAPTURE_VERSION = 20900  # NCCL 2.9: collectives can be captured in CUDA graphs
AVERAGE_VERSION = 21000  # NCCL 2.10: ncclAvg


def import_nccl():
    """cupy.cuda.nccl, or BackendUnavailable saying why not."""
    reason = unavailable_reason()
    if reason is not None:
        raise BackendUnavailable(f"the NCCL engine needs CuPy with a GPU: {reason}")
    cupy, _ = _import_cupy()
    from cupy.cuda import nccl

    if not getattr(nccl, "available", False):
        raise BackendUnavailable("the NCCL engine needs NCCL: cupy.cuda.nccl is not available (install the "
                                 "nvidia-nccl-cu12 or -cu13 wheel matching your CuPy), or use the 'mpi' engine")
    return cupy, nccl


class NcclCommunicator(Communicator):
    """NCCL over every rank's current GPU; ``host`` (an MPI or single-process communicator) carries host arrays."""

    engine = "nccl"
    device_buffers = True

    def __init__(self, host: Communicator):
        cupy, nccl = import_nccl()
        super().__init__(host.rank, host.size, host.local_rank)
        self.host, self.cupy, self.nccl = host, cupy, nccl
        self.version = nccl.get_version()
        self.capturable = self.version >= CAPTURE_VERSION
        unique_id = host.broadcast_object(nccl.get_unique_id() if host.rank == 0 else None)
        self.device = cupy.cuda.Device()
        with self.device:
            self.comm = nccl.NcclCommunicator(host.size, unique_id, host.rank)
        self._dtypes = {np.dtype(np.float32): nccl.NCCL_FLOAT32, np.dtype(np.float64): nccl.NCCL_FLOAT64,
                        np.dtype(np.int32): nccl.NCCL_INT32, np.dtype(np.int64): nccl.NCCL_INT64}
        self._ops = {"sum": nccl.NCCL_SUM, "min": nccl.NCCL_MIN, "max": nccl.NCCL_MAX,
                     "average": nccl.NCCL_AVG if self.version >= AVERAGE_VERSION else nccl.NCCL_SUM}

    def _device_args(self, buf, what):
        if not isinstance(buf, self.cupy.ndarray) or not buf.flags.c_contiguous:
            raise TypeError(f"{what}: the NCCL engine takes a C-contiguous CuPy array, got {type(buf).__name__}")
        if buf.device.id != self.device.id:
            raise ValueError(f"{what}: the array is on GPU {buf.device.id} but rank {self.rank}'s NCCL "
                             f"communicator is on GPU {self.device.id}; call mlp_gpu.distributed.init() "
                             "before building the model")
        if buf.dtype not in self._dtypes:
            raise TypeError(f"{what}: dtype {buf.dtype} is not one of {sorted(map(str, self._dtypes))}")
        return buf.data.ptr, buf.size, self._dtypes[buf.dtype], self.cupy.cuda.get_current_stream().ptr

    def _allreduce(self, buf, op):
        if isinstance(buf, np.ndarray):
            self.host.allreduce(buf, op)
            return
        ptr, count, dtype, stream = self._device_args(buf, "allreduce(buf)")
        self.comm.allReduce(ptr, ptr, count, dtype, self._ops[op], stream)
        if op == "average" and self.version < AVERAGE_VERSION:
            buf /= self.size

    def _broadcast(self, buf, root):
        if isinstance(buf, np.ndarray):
            self.host.broadcast(buf, root)
            return
        ptr, count, dtype, stream = self._device_args(buf, "broadcast(buf)")
        self.comm.bcast(ptr, count, dtype, root, stream)

    def broadcast_object(self, obj, root=0):
        return self.host.broadcast_object(obj, root)

    def barrier(self):
        self.cupy.cuda.get_current_stream().synchronize()
        self.host.barrier()

    def abort(self, message, code=1):
        try:
            self.comm.abort()  # frees ranks blocked inside an NCCL kernel
        finally:
            self.host.abort(message, code)
