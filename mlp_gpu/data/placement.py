"""Putting a data source on the device: resident in one piece, or streamed a part at a time.

``place`` asks the backend whether the data set fits (``Backend.keeps_resident``: a stated share of
the free device memory; on the CPU an in-memory array always stays) and logs the choice. A streamed
data set keeps two stages (``backend.make_stage``): a reader thread fills one with the next part (and
on a GPU starts its copy on a side stream) while the steps run on the other, so memory stays bounded
by two parts whatever the size of the data.
"""
from __future__ import annotations

import concurrent.futures
import logging

import numpy as np

from .sources import epoch_order

log = logging.getLogger("mlp_gpu")
_MIB = 1 << 20


class StreamedData:
    """A data set read part by part through two alternating stages of the backend."""

    streamed = True

    def __init__(self, backend, source, chunk_rows):
        self.source, self.chunk_rows = source, chunk_rows
        self.sizes = source.part_sizes(chunk_rows)
        self.rows = source.rows
        y_dtype = source.y_dtype if source.need_y else None
        self.stages = [backend.make_stage(max(self.sizes), source.cols, source.x_dtype, source.y_shape, y_dtype)
                       for _ in range(2)]

    @property
    def capacity(self) -> int:
        return self.stages[0].capacity

    def buffers(self) -> list:
        """The device buffers the parts come in (captured steps are made for each)."""
        return self.stages

    def step_rows(self, batch_size: int) -> int:
        """Rows of the workspace: a batch, or a whole part when each part is one step (a PyDataset's)."""
        return self.capacity if self.source.one_step_parts else min(batch_size, self.capacity)

    def steps(self, batch_size: int) -> int:
        rows = self.step_rows(batch_size)
        return sum(-(-size // rows) for size in self.sizes)

    def _load(self, stage, part, order):
        stage.before_fill()
        n = self.source.read(part, self.chunk_rows, stage.host_x, stage.host_y)
        stage.host_perm[:n] = np.arange(n) if order is None else order
        stage.upload(n)
        return stage

    def parts(self, seed=0, epoch=0, shuffle=False):
        """Yield each part's stage, its rows uploaded, cursor at 0, in the epoch's order (``epoch_order``).

        The next part is read in a background thread meanwhile; the row orders are drawn here, in
        visiting order, so the sequence depends only on (seed, epoch).
        """
        self.source.on_epoch_begin()
        order = epoch_order(seed, epoch, self.sizes, shuffle, self.source.shuffle_rows)
        reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mlp_gpu-reader")
        pending = reader.submit(self._load, self.stages[0], *next(order))
        try:
            k = 0
            while pending is not None:
                stage = pending.result()
                following = next(order, None)
                pending = None if following is None else \
                    reader.submit(self._load, self.stages[(k + 1) % 2], *following)
                stage.before_use()
                stage.cursor[...] = 0
                try:
                    yield stage
                finally:
                    stage.after_use()
                k += 1
        finally:
            if pending is not None:
                concurrent.futures.wait([pending])  # never leave a read writing into a stage
            reader.shutdown(wait=True)
        self.source.on_epoch_end()


def keeps_resident(backend, source) -> bool:
    """The source's own choice (``resident=True/False``), else the backend's (``Backend.keeps_resident``)."""
    if source.resident is not None:
        return source.resident
    return backend.keeps_resident(source.nbytes(), source.in_memory)


def place(model, source, batch_size, what, make_resident, resident=None):
    """Return the device data of a bound ``source``: ``make_resident(x, y)`` of the whole of it, or a
    StreamedData; ``resident`` None asks ``keeps_resident``. Logged (in-memory arrays kept resident, the
    usual case, only at debug level)."""
    be = model.backend
    nbytes = source.nbytes()
    if resident is None:
        resident = keeps_resident(be, source)
    if resident:
        level = logging.DEBUG if source.in_memory else logging.INFO
        log.log(level, "%s: %s rows of %s (%.1f MiB) resident on %s", what, f"{source.rows:,}", source.describe,
                nbytes / _MIB, be.name)
        return make_resident(*load_whole(be, source, batch_size))
    data = StreamedData(be, source, source.default_chunk_rows(batch_size))
    size = f"{len(data.sizes):,} batches" if source.one_step_parts else f"{source.rows:,} rows"
    log.info("%s: %s of %s streamed to %s in %d parts of up to %s rows (%.1f MiB each, %.1f MiB at most)",
             what, size, source.describe, be.name, len(data.sizes), f"{data.capacity:,}",
             data.capacity * source.row_bytes() / _MIB, nbytes / _MIB)
    return data


def load_whole(backend, source, batch_size):
    """(x, y) of the whole source as device arrays; y None without targets. Read a chunk at a time."""
    if source.in_memory:
        return backend.asarray(source.x), backend.asarray(source.y) if source.need_y else None
    x = backend.empty((source.rows, source.cols), source.x_dtype)
    y = backend.empty((source.rows,) + source.y_shape, source.y_dtype) if source.need_y else None
    chunk = source.default_chunk_rows(batch_size)
    host_x = np.empty((chunk, source.cols), source.x_dtype)
    host_y = np.empty((chunk,) + source.y_shape, source.y_dtype) if source.need_y else None
    for part, size in enumerate(source.part_sizes(chunk)):
        start = part * chunk
        source.read(part, chunk, host_x, host_y)
        backend.copy_from_host(x[start:start + size], host_x[:size])
        if y is not None:
            backend.copy_from_host(y[start:start + size], host_y[:size])
    return x, y
