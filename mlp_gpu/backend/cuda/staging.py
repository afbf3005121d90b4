"""Pinned host buffers for streamed data: a chunk is filled on the host while the previous one is in use,
and copied on a side stream overlapped with compute."""
from __future__ import annotations


import numpy as np

from ..staging import HostStage


class PinnedStage(HostStage):
    """One part of a streamed data set on the GPU: pinned host buffers, device buffers, a side stream.

    The upload copies the part asynchronously on the side stream (x stays uint8 until the gather
    kernel scales it). Two events order it: ``copied`` (recorded on the side stream after the copy:
    the steps wait for it, and the host waits for it before refilling the pinned buffers) and
    ``used`` (recorded on the compute stream after the part's steps: the next copy into the device
    buffers waits for it). With two stages the copy of one part overlaps the steps on the other.
    """

    def __init__(self, backend, rows, cols, x_dtype, y_shape, y_dtype):
        import cupyx  # part of CuPy, imported only here

        super().__init__(backend, rows, cols, x_dtype, y_shape, y_dtype, empty=cupyx.empty_pinned)
        cp = backend.xp
        self.x = backend.empty(self.host_x.shape, x_dtype)
        self.y = None if y_dtype is None else backend.empty(self.host_y.shape, y_dtype)
        self.perm = backend.empty(rows, np.int64)
        self.device = cp.cuda.Device()  # the reader thread uploads from another thread: name the device
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.copied = cp.cuda.Event(disable_timing=True)
        self.used = cp.cuda.Event(disable_timing=True)
        self.copied.record(self.stream)
        self.used.record(cp.cuda.get_current_stream())

    def before_fill(self):
        self.copied.synchronize()  # the last copy out of the pinned buffers is done

    def upload(self, rows):
        with self.device:
            self.stream.wait_event(self.used)  # the steps on the previous part here are done
            for dev, host in ((self.x, self.host_x), (self.y, self.host_y), (self.perm, self.host_perm)):
                if dev is not None:
                    dev[:rows].set(host[:rows], stream=self.stream)
            self.copied.record(self.stream)
        self.rows = rows

    def before_use(self):
        self.backend.xp.cuda.get_current_stream().wait_event(self.copied)

    def after_use(self):
        self.used.record(self.backend.xp.cuda.get_current_stream())
