"""Where fit, evaluate and predict read their rows from, and in which order.

Three kinds of source, one protocol (``bind``, ``part_sizes``, ``read``):

- :class:`ArraySource`: arrays in memory, checked once up front (the resident case).
- :class:`ChunkedSource`: row-addressable arrays that stay on disk, NumPy memmaps and h5py datasets
  (x and y from one HDF5 file or two); a chunk of rows at a time is read into a buffer the caller owns.
- :class:`BatchSource`: a Keras ``PyDataset``-like object: ``len(ds)`` (or ``ds.num_batches``) batches,
  ``ds[i]`` returning ``(x, y)`` (or ``(x,)`` for predict); each batch is one part and one step.

:func:`as_source` picks one for what ``fit`` was given. Pass a source yourself to choose the chunk size
or to force a placement: ``model.fit(ChunkedSource(x, y, chunk_rows=8192, resident=False))``.

A source is cut into parts (row spans, or the batches of a BatchSource). An epoch visits the parts in a
permutation and the rows of each part in a permutation, both drawn from (seed, epoch): :func:`epoch_order`.
"""
from __future__ import annotations

import copy

import numpy as np

from .. import losses
from .._checks import check_int
from .rows import RowRange, _is_h5py, _read_rows, row_range

CHUNK_BYTES = 64 << 20  # default streamed chunk: rows of x filling 64 MiB, a whole number of batches


def _is_batch_source(x) -> bool:
    """A PyDataset-like object: indexable batches with a length, not an array or a sequence of samples."""
    if isinstance(x, (np.ndarray, list, tuple, str, bytes, dict)) or hasattr(x, "shape"):
        return False
    return hasattr(x, "__getitem__") and (hasattr(x, "num_batches") or hasattr(x, "__len__"))


def _check_open(a, arg) -> None:
    """An h5py dataset (or rows of one) whose file was closed: say so before anything reads its shape."""
    base = a.base if isinstance(a, RowRange) else a
    if _is_h5py(base) and not base:  # an h5py object is false once its file is closed
        raise ValueError(f"{arg}: the h5py dataset's file is closed; open it again (h5py.File(path, 'r')) and "
                         "keep it open while fit, evaluate or predict reads it")


def as_source(x, y=None, arg="x", y_arg="y"):
    """The Source for fit/evaluate/predict's (x, y): x itself if it is one, else the kind x calls for."""
    for a, name in ((x.x, arg), (x.y, y_arg)) if isinstance(x, ChunkedSource) else ((x, arg), (y, y_arg)):
        _check_open(a, name)
    if isinstance(x, Source) or _is_batch_source(x):
        if y is not None:
            raise ValueError(f"y: must be None when {arg} is a {type(x).__name__} (it yields the targets)")
        return x if isinstance(x, Source) else BatchSource(x)
    if any(isinstance(a, (np.memmap, RowRange)) or _is_h5py(a) for a in (x, y)):
        return ChunkedSource(x, y)
    return ArraySource(x, y)


def epoch_order(seed, epoch, sizes, shuffle=True, shuffle_rows=True):
    """Yield (part index, row order within the part or None for storage order) in visiting order.

    The parts follow a permutation drawn from ``[seed, epoch, 1]``; the rows of the parts, in visiting
    order, are successive permutations of one generator seeded ``[seed, epoch]``. With a single part
    the rows therefore follow ``default_rng([seed, epoch]).permutation(rows)``: the resident order.
    """
    if not shuffle:
        for part in range(len(sizes)):
            yield part, None
        return
    rows_rng = np.random.default_rng([seed, epoch])
    order = np.random.default_rng([seed, epoch, 1]).permutation(len(sizes)) if len(sizes) > 1 else [0]
    for part in order:
        yield int(part), rows_rng.permutation(sizes[part]) if shuffle_rows else None


class Source:
    """Rows for the device: after ``bind(model)``, ``rows``, ``x_dtype``, ``y_shape``/``y_dtype`` (per row)."""

    shuffle_rows = True   # rows within a part are shuffled (a PyDataset's batches stay whole, as in Keras)
    in_memory = False     # the rows are already in host memory
    one_step_parts = False  # each part is exactly one step (the batches of a PyDataset)

    def __init__(self, resident=None, chunk_rows=None):
        if resident not in (None, True, False):
            raise ValueError(f"resident: expected None (the backend decides), True or False, got {resident!r}")
        if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                       or chunk_rows < 1):
            raise ValueError(f"chunk_rows: expected None or an int >= 1, got {chunk_rows!r}")
        self.resident, self.chunk_rows = resident, chunk_rows

    def _bind_targets(self, model, need_y):
        self.arg_y = "y"
        sparse = model.loss is None or model.loss.sparse
        self.y_shape = () if sparse else (model.output_units,)
        self.y_dtype = np.dtype(np.int32 if sparse else model.dtype)
        self.need_y = need_y
        self._targets = lambda y, n: losses.check_targets(model.loss, y, n, model.output_units, model.dtype)

    def row_bytes(self) -> int:
        return self.cols * self.x_dtype.itemsize + (int(np.prod(self.y_shape)) * self.y_dtype.itemsize
                                                    if self.need_y else 0)

    def nbytes(self) -> int:
        """Bytes the whole data set takes on the device."""
        return self.rows * self.row_bytes()

    def default_chunk_rows(self, batch_size: int) -> int:
        """Rows per streamed part: ``chunk_rows`` or CHUNK_BYTES of rows, a whole number of batches
        (so only the last part can end in a short batch), or all rows if that is fewer."""
        want = self.chunk_rows or max(1, CHUNK_BYTES // self.row_bytes())
        return self.rows if want >= self.rows else max(batch_size, want // batch_size * batch_size)

    def part_sizes(self, chunk_rows: int) -> list[int]:
        return [min(chunk_rows, self.rows - start) for start in range(0, self.rows, chunk_rows)]

    def on_epoch_begin(self):
        """Called before each pass (a PyDataset's hook)."""

    def on_epoch_end(self):
        """Called after each pass."""


class ChunkedSource(Source):
    """x (and y) that can be read a row span at a time: memmaps, h5py datasets, arrays.

    Nothing is read up front: ``bind`` checks shapes and types from the metadata, ``read`` checks the
    values of each chunk (finite x, valid targets) as it goes.
    """

    describe = "chunked"

    def __init__(self, x, y=None, chunk_rows=None, resident=None):
        super().__init__(resident, chunk_rows)
        self.x, self.y = x, y

    def bind(self, model, arg="x", need_y=True):
        x, shape = self.x, tuple(model.input_shape)
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(f"{arg}: expected an array, memmap or h5py dataset, got {type(x).__name__}")
        if len(x.shape) == 0 or x.shape[0] == 0 or (tuple(x.shape[1:]) not in (shape, (model.in_dim,))):
            raise ValueError(f"{arg}: expected a non-empty array of samples of shape {shape}, got shape {x.shape}")
        if np.dtype(x.dtype).kind not in "fiub":
            raise ValueError(f"{arg}: expected a numeric array, got dtype {x.dtype}")
        self.arg, self.rows, self.cols = arg, int(x.shape[0]), model.in_dim
        self.x_dtype = np.dtype(np.uint8 if x.dtype == np.uint8 else model.dtype)
        self._bind_targets(model, need_y)
        if need_y:
            if self.y is None:
                raise ValueError(f"y: expected targets for the {self.rows} rows of {arg}, got None")
            if not hasattr(self.y, "shape") or self.y.shape[:1] != (self.rows,):
                raise ValueError(f"y: expected {self.rows} targets (one per row of {arg}), got shape "
                                 f"{getattr(self.y, 'shape', type(self.y).__name__)}")
            self._targets(np.asarray(self.y[:1]), 1)  # shape and dtype errors now, not at the first chunk
        self.describe = ("h5py dataset" if _is_h5py(x) else "memmap" if isinstance(x, np.memmap)
                         else "in-memory array")
        return self

    def read(self, part: int, chunk_rows: int, x_out, y_out=None) -> int:
        """Read part ``part`` (rows part*chunk_rows ...) into x_out[:n] (and y_out[:n]); return n."""
        start = part * chunk_rows
        stop = min(start + chunk_rows, self.rows)
        n = stop - start
        xo = x_out[:n]
        _check_open(self.x, self.arg)
        _read_rows(self.x, start, stop, xo)
        if xo.dtype != np.uint8:
            bad = ~np.isfinite(xo).all(axis=1)
            if bad.any():
                raise ValueError(f"{self.arg}: contains NaN or infinity (first in row {start + int(np.argmax(bad))})")
        if y_out is not None:
            _check_open(self.y, "y")
            try:
                y_out[:n] = self._targets(np.asarray(self.y[start:stop]), n)
            except ValueError as exc:
                raise ValueError(f"{exc} (in rows {start} to {stop - 1})") from None
        return n

    def split(self, n_val: int, model):
        """(training, validation) sources, bound to ``model``: the last n_val rows validate, as Keras'
        validation_split; nothing is read."""
        cut = self.rows - n_val
        return tuple(type(self)(row_range(self.x, start, stop), row_range(self.y, start, stop), self.chunk_rows,
                                self.resident).bind(model, self.arg)
                     for start, stop in ((0, cut), (cut, self.rows)))


class ArraySource(ChunkedSource):
    """Arrays in host memory, checked and converted once (``check_inputs``): resident unless it does not fit."""

    in_memory = True
    describe = "in-memory array"

    def bind(self, model, arg="x", need_y=True):
        from .sources import check_inputs

        self.x = check_inputs(model, self.x, arg)
        self.arg, self.rows, self.cols, self.x_dtype = arg, self.x.shape[0], model.in_dim, self.x.dtype
        self._bind_targets(model, need_y)
        if need_y:
            self.y = self._targets(self.y, self.rows)
        return self

    def split(self, n_val: int, model):
        """(training, validation) sources: views of the arrays checked by ``bind``, not checked again."""
        halves = []
        for start, stop in ((0, self.rows - n_val), (self.rows - n_val, self.rows)):
            half = copy.copy(self)
            half.x, half.rows = self.x[start:stop], stop - start
            half.y = None if self.y is None else self.y[start:stop]
            halves.append(half)
        return tuple(halves)

    def read(self, part, chunk_rows, x_out, y_out=None):
        start = part * chunk_rows
        stop = min(start + chunk_rows, self.rows)
        x_out[:stop - start] = self.x[start:stop]
        if y_out is not None:
            y_out[:stop - start] = self.y[start:stop]
        return stop - start


class BatchSource(Source):
    """A Keras PyDataset-like object: ``len(ds)`` or ``ds.num_batches`` batches, ``ds[i] -> (x, y)``.

    Each batch is one part and one training step, of the size it comes in; buffers are sized from batch 0,
    and a later batch may not be larger. ``on_epoch_begin``/``on_epoch_end`` are called as Keras does.
    Shuffling permutes the batch order each epoch, never the rows inside a batch (Keras likewise).
    """

    shuffle_rows = False
    one_step_parts = True
    describe = "batch source"

    def __init__(self, dataset, resident=False):
        super().__init__(resident)
        if resident:
            raise ValueError("resident: a batch source is read batch by batch each epoch; it cannot be resident")
        self.dataset = dataset

    def bind(self, model, arg="x", need_y=True):
        from .sources import check_inputs

        count = getattr(self.dataset, "num_batches", None) if hasattr(self.dataset, "num_batches") \
            else len(self.dataset)
        if count is None or isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
            raise ValueError(f"{arg}: expected a PyDataset with a finite number of batches (len or num_batches "
                             f">= 1), got {count!r}; infinite datasets (steps_per_epoch) are not supported")
        self.arg, self.batches, self.cols = arg, int(count), model.in_dim
        self._bind_targets(model, need_y)
        self._check_x = lambda x, where: check_inputs(model, x, where)
        bx, _ = self._batch(0)
        self.capacity, self.x_dtype = bx.shape[0], bx.dtype
        self.rows = self.batches * self.capacity  # an upper bound until a pass has counted them
        return self

    def _batch(self, i):
        where = f"{self.arg}[{i}]"
        batch = self.dataset[i]
        if isinstance(batch, np.ndarray):
            batch = (batch,)
        if not isinstance(batch, (tuple, list)) or not 1 <= len(batch) <= 3 or isinstance(batch, dict):
            raise ValueError(f"{where}: a PyDataset batch must be a tuple (x,) or (x, y), got {type(batch).__name__}")
        if len(batch) == 3 and batch[2] is not None:
            raise ValueError(f"{where}: sample weights (a third element) are not supported")
        x = self._check_x(batch[0], where)
        if not self.need_y:
            return x, None
        if len(batch) < 2 or batch[1] is None:
            raise ValueError(f"{where}: expected a batch (x, y) with targets, got one without y")
        try:
            return x, self._targets(batch[1], x.shape[0])
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def part_sizes(self, chunk_rows=None):
        return [self.capacity] * self.batches

    def default_chunk_rows(self, batch_size):
        return self.capacity

    def read(self, part, chunk_rows, x_out, y_out=None) -> int:
        x, y = self._batch(part)
        n = x.shape[0]
        if n > self.capacity:
            raise ValueError(f"{self.arg}[{part}]: batch of {n} rows is larger than batch 0's {self.capacity}; "
                             "buffers are sized from the first batch, so make it the largest")
        if x.dtype != self.x_dtype:
            raise ValueError(f"{self.arg}[{part}]: dtype {x.dtype} differs from batch 0's {self.x_dtype}")
        x_out[:n] = x
        if y_out is not None:
            y_out[:n] = y
        return n

    def on_epoch_begin(self):
        getattr(self.dataset, "on_epoch_begin", lambda: None)()

    def on_epoch_end(self):
        getattr(self.dataset, "on_epoch_end", lambda: None)()


def split_rows(x, y, size: int):
    """Géron's split without reading: the first ``size`` rows validate. Returns ((x, y), (x_val, y_val))."""
    rows = len(x)
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 0 < size < rows:
        raise ValueError(f"size: expected an int in [1, {rows - 1}], got {size!r}")
    return (row_range(x, size, rows), row_range(y, size, rows)), (row_range(x, 0, size), row_range(y, 0, size))


def check_inputs(model, x, arg="x") -> np.ndarray:
    """Return x as (rows, features) in the model's dtype (or uint8 pixels), or raise saying what is wrong."""
    if not hasattr(x, "shape"):
        try:
            x = np.asarray(x)
        except Exception:
            raise TypeError(f"{arg}: expected an array, got {type(x).__name__}") from None
    x = model.backend.to_host(x) if not isinstance(x, np.ndarray) else x
    shape = tuple(model.input_shape)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{arg}: expected a non-empty array of samples of shape {shape}, got shape {x.shape}")
    if x.shape[1:] != shape and x.shape[1:] != (model.in_dim,):
        raise ValueError(f"{arg}: expected samples of shape {shape} (array shape (rows, "
                         f"{', '.join(map(str, shape))})), got array shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"{arg}: expected a numeric array, got dtype {x.dtype}")
    x = x.reshape(x.shape[0], model.in_dim)
    if x.dtype != np.uint8:
        x = np.ascontiguousarray(x, dtype=model.dtype)
        if not np.isfinite(x).all():
            bad = int(np.argmax(~np.isfinite(x).all(axis=1)))
            raise ValueError(f"{arg}: contains NaN or infinity (first in row {bad})")
    return x


def split_validation(x, y, size: int = 5000):
    """Géron's split: the first ``size`` rows validate, the rest train. Returns ((x, y), (x_val, y_val))."""
    check_int(size, "size", 1, len(x) - 1)
    return (x[size:], y[size:]), (x[:size], y[:size])
