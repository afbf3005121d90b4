"""Where streamed data lands: host memory checks and the CPU's stage (the GPU's is in cupy_backend.py).

A *stage* holds one part of a streamed data set (a chunk of rows, or one batch of a PyDataset): host
buffers a reader fills, device buffers the training steps gather from, the part's row order and a
cursor. The streaming loop keeps two stages and alternates them, so one part is read (and, on a GPU,
copied) while the steps run on the other. Its calls, in order, for each part:

    stage.before_fill()   # the host buffers may be overwritten (their last upload has finished)
    ... fill stage.host_x[:n], stage.host_y[:n], stage.host_perm[:n] ...
    stage.upload(n)       # start the host -> device copy
    stage.before_use()    # the steps may read the device buffers now
    ... steps ...
    stage.after_use()     # the steps are issued; the next upload waits for them to finish
"""
from __future__ import annotations

import os
import resource

import numpy as np


def _proc_kib(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def host_free_bytes() -> int:
    """Bytes this process could still allocate: the kernel's MemAvailable, lowered by the process'
    own RLIMIT_DATA and RLIMIT_AS headroom where those are set."""
    free = _proc_kib("/proc/meminfo", "MemAvailable")
    if free is None:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for limit, used in ((resource.RLIMIT_DATA, "VmData"), (resource.RLIMIT_AS, "VmSize")):
        soft = resource.getrlimit(limit)[0]
        if soft != resource.RLIM_INFINITY:
            free = min(free, soft - (_proc_kib("/proc/self/status", used) or 0))
    return max(0, free)


class HostStage:
    """One part's buffers on the CPU: the host buffers *are* what the steps read, so nothing is copied
    and the synchronization calls have nothing to wait for."""

    def __init__(self, backend, rows, cols, x_dtype, y_shape, y_dtype, empty=np.empty):
        self.backend = backend
        self.host_x = empty((rows, cols), x_dtype)
        self.host_y = None if y_dtype is None else empty((rows,) + tuple(y_shape), y_dtype)
        self.host_perm = empty(rows, np.int64)
        self.x, self.y, self.perm = self.host_x, self.host_y, self.host_perm
        self.cursor = backend.zeros(1, np.int64)
        self.capacity = rows
        self.rows = 0

    def before_fill(self) -> None:
        """Return once the host buffers may be overwritten."""

    def upload(self, rows: int) -> None:
        """Make the first ``rows`` rows of the host buffers visible to the steps."""
        self.rows = rows

    def before_use(self) -> None:
        """Order the steps after the upload."""

    def after_use(self) -> None:
        """Mark that the steps reading this stage have been issued."""

    def gather(self, ws) -> None:
        """ws.x (and ws.y) <- the ws.rows rows at the cursor, in the part's row order."""
        self.backend.gather_rows(self.x, self.perm, self.cursor, ws.x)
        if self.y is not None:
            self.backend.gather_rows(self.y, self.perm, self.cursor, ws.y)
