"""Reading row ranges out of arrays that stay on disk: memmaps by pread into a caller's buffer (no page
cache growth), h5py datasets by slices, and RowRange, a lazy view of rows start..stop of either."""
from __future__ import annotations

import mmap
import os

import numpy as np


# ---- reading rows ----------------------------------------------------------------------------------
def _read_rows(src, start, stop, out) -> None:
    """out (stop - start, cols) <- rows start..stop-1 of src, without holding more than ``out`` in memory.

    A memmap is read with pread (its pages do not pile up in this process), an h5py dataset with
    read_direct (HDF5 converts the type); anything else is sliced and cast.
    """
    if isinstance(src, RowRange):
        return _read_rows(src.base, src.start + start, src.start + stop, out)
    view = out.reshape((stop - start,) + tuple(src.shape[1:]))
    place = _memmap_file_offset(src)
    if place is not None and np.dtype(src.dtype) == out.dtype:
        path, offset = place
        _pread_into(path, offset + start * view[0].nbytes, memoryview(view).cast("B"))
    elif _is_h5py(src):
        src.read_direct(view, np.s_[start:stop])
    else:
        np.copyto(view, src[start:stop], casting="unsafe")


def _memmap_file_offset(a):
    """(file, byte offset of a[0]) for a C-contiguous read-through np.memmap view; None otherwise."""
    mm = getattr(a, "_mmap", None)
    if not isinstance(a, np.memmap) or mm is None or a.filename is None or a.mode == "c" \
            or not a.flags.c_contiguous:
        return None
    try:
        base = np.frombuffer(mm, np.uint8).ctypes.data  # where numpy mapped the file
    except (ValueError, TypeError):  # a closed mapping
        return None
    map_start = a.offset - a.offset % mmap.ALLOCATIONGRANULARITY  # numpy maps from a granule boundary
    return a.filename, map_start + a.ctypes.data - base


def _pread_into(path, offset, buf) -> None:
    with open(path, "rb", buffering=0) as f:
        done = 0
        while done < len(buf):
            got = os.preadv(f.fileno(), [buf[done:]], offset + done)
            if got == 0:
                raise EOFError(f"{path}: file ends before byte {offset + len(buf)}")
            done += got


class RowRange:
    """Rows start..stop-1 of an array-like (an h5py dataset) without reading them: shape, dtype, slicing."""

    def __init__(self, base, start, stop):
        self.base, self.start, self.stop = base, int(start), int(stop)
        self.shape, self.dtype = (self.stop - self.start,) + tuple(base.shape[1:]), base.dtype

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        """The rows, read: for code that takes any array (a resident fit)."""
        return np.asarray(self.base[self.start:self.stop], dtype)

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError("RowRange: only contiguous row slices can be read")
        start, stop, _ = rows.indices(self.shape[0])
        return self.base[self.start + start:self.start + max(start, stop)]


def row_range(a, start, stop):
    """Rows start..stop-1 of a: a view for NumPy arrays and memmaps, a RowRange (nothing read) otherwise."""
    if a is None or isinstance(a, np.ndarray):
        return None if a is None else a[start:stop]
    if isinstance(a, RowRange):
        return RowRange(a.base, a.start + start, a.start + stop)
    return RowRange(a, start, stop)


def _is_h5py(a) -> bool:
    return type(a).__module__.startswith("h5py")
