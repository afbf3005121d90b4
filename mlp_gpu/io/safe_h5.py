"""The one guarded way to read an HDF5 file someone else made: model files (ours, Keras') and data sets.

An HDF5 file can make its reader open other files (external links, virtual datasets, external raw
storage), crash it (virtual datasets read from memory), or declare sizes it does not hold (a 10^12-row
dataset with no chunks written, a chunk inflating a thousandfold). :func:`open_h5` refuses those before
any data is read: it opens regular files only, read-only, then walks every link and object once and
checks each dataset's storage. Readers then fetch objects through the returned :class:`H5Guard`, which
checks types, dtypes and shapes at the point of use. Keras 3 refuses the same (saving_lib.py:
"Not allowed: H5 file with ExternalLink / external Dataset / virtual Dataset").

Every refusal is ``error`` (ModelFileError for model files, ValueError for data) naming the file, the
object's path inside it and what is wrong.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import posixpath
import stat

import numpy as np

from .files import ModelFileError

MAX_OBJECTS = 100_000       # links walked in one file: far beyond any model or data layout
MAX_DEPTH = 32              # group nesting
MAX_NDIM = 32               # HDF5 allows 32 dimensions
MAX_RATIO = 1000            # declared / stored bytes, as Keras' _H5_DATASET_MAX_EXPANSION
BOMB_FLOOR = 1 << 20        # datasets under 1 MiB may declare any ratio (scalars, fill values)
MAX_CHUNK_BYTES = 256 << 20  # HDF5 inflates a whole chunk to read any of it
NUMERIC = "fiub"
# What h5py raises for a damaged file, from deep inside libhdf5
DAMAGED = (OSError, RuntimeError, KeyError, ValueError, TypeError, OverflowError, SystemError)
# Counters read back from a file: a checked range, never a loop or allocation of that size.
COUNTERS = {"iterations": (0, 1 << 62), "epoch": (0, 1 << 31), "draws": (0, 1 << 62), "seed": (0, (1 << 64) - 1)}


def h5py_module():
    import h5py  # an optional dependency: imported where HDF5 is read

    return h5py


def file_size(path, error=ModelFileError, what="an HDF5 file") -> int:
    """The size of ``path`` if it is a regular file, found without opening it (a FIFO would block)."""
    st = os.stat(path)  # FileNotFoundError as it is: the caller's users act on it
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(f"path: {str(path)!r} is a directory, expected {what}")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"path: {str(path)!r} is not a regular file (a FIFO, device or socket); expected {what}")
    return st.st_size


def open_regular(path, error=ModelFileError, what="a file"):
    """A binary read-only file object for ``path``, refusing anything but a regular file, never blocking."""
    file_size(path, error, what)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
        os.close(fd)
        raise error(f"path: {str(path)!r} is not a regular file; expected {what}")
    return os.fdopen(fd, "rb")


@contextlib.contextmanager
def open_h5(source, label=None, error=ModelFileError, ratio=MAX_RATIO, what="an HDF5 file"):
    """An :class:`H5Guard` over the HDF5 file at path ``source`` (or in the bytes ``source``), walked and
    checked; the file is closed on exit. ``label`` names it in errors (default: the path)."""
    guard = open_guard(source, label, error, ratio, what)
    try:
        yield guard
    finally:
        guard.file.close()


def open_guard(source, label=None, error=ModelFileError, ratio=MAX_RATIO, what="an HDF5 file") -> "H5Guard":
    """Like :func:`open_h5`, for a file that stays open (the data sources' datasets): the caller closes
    ``guard.file``."""
    h5py = h5py_module()
    if isinstance(source, (bytes, bytearray, memoryview)):
        size, target = len(source), io.BytesIO(bytes(source))
        label = label or "<bytes>"
    else:
        size, target = file_size(source, error, what), os.fspath(source)
        label = label or str(source)
    try:
        f = h5py.File(target, "r")
    except DAMAGED as exc:
        raise error(f"path: {label!r} is not {what} ({type(exc).__name__}: {exc})") from None
    guard = H5Guard(f, label, size, error, ratio)
    try:
        guard.check_tree()
    except error:
        f.close()
        raise
    except DAMAGED as exc:
        f.close()
        raise error(f"path: {label!r} is damaged ({type(exc).__name__}: {exc})") from None
    except BaseException:
        f.close()
        raise
    return guard


class H5Guard:
    """Checked access to an open h5py file: ``group``, ``dataset``, ``read``, ``attr``, ``int_attr``."""

    def __init__(self, f, label, size, error=ModelFileError, ratio=MAX_RATIO):
        self.file, self.label, self.size, self.error, self.ratio = f, label, size, error, ratio
        self.h5py = h5py_module()

    def fail(self, where, problem):
        raise self.error(f"path: {self.label!r} object {where!r}: {problem}")

    # ---- the walk: every link and object, once, before anything is read ----------------------------
    def check_tree(self) -> None:
        seen, soft, count = set(), [], 0
        stack = [(self.file, "/", 0)]
        while stack:
            group, where, depth = stack.pop()
            if depth > MAX_DEPTH:
                self.fail(where, f"groups nest deeper than {MAX_DEPTH}")
            for name in group:
                count += 1
                if count > MAX_OBJECTS:
                    self.fail(where, f"the file holds more than {MAX_OBJECTS:,} links")
                path = posixpath.join(where, name)
                link = self._link(group, name, path)
                if isinstance(link, self.h5py.SoftLink):
                    soft.append((path, link.path))
                    continue
                obj = group[name]
                key = self._address(obj)
                if key in seen:  # a second hard link to an object already checked (or a cycle)
                    continue
                seen.add(key)
                if isinstance(obj, self.h5py.Group):
                    stack.append((obj, path, depth + 1))
                elif isinstance(obj, self.h5py.Dataset):
                    self.check_storage(obj, path)
        for path, target in soft:
            self._check_soft(path, target)

    def _link(self, group, name, path):
        h5py = self.h5py
        try:
            link = group.get(name, getlink=True)
        except (TypeError, KeyError, OSError) as exc:  # user-defined link classes
            self.fail(path, f"a link h5py cannot classify ({exc}); not allowed")
        if isinstance(link, h5py.ExternalLink):
            self.fail(path, f"an external link to {link.filename!r}:{link.path!r}; not allowed (it would read "
                            "another file)")
        if not isinstance(link, (h5py.HardLink, h5py.SoftLink)):
            self.fail(path, f"a {type(link).__name__}; not allowed")
        return link

    def _address(self, obj):
        info = self.h5py.h5o.get_info(obj.id)
        return getattr(info, "token", None) or getattr(info, "addr", None) or obj.name

    def _check_soft(self, path, target):
        """A soft link may point inside the top-level group that holds it (anywhere from the root),
        through hard links only."""
        absolute = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
        top = "/" + path.strip("/").split("/")[0] if path.count("/") > 1 else "/"
        if not (absolute == top or absolute.startswith(top.rstrip("/") + "/")):
            self.fail(path, f"a soft link to {target!r}, outside {top!r}; not allowed")
        group = self.file
        parts = [p for p in absolute.split("/") if p]
        for i, part in enumerate(parts):
            here = "/" + "/".join(parts[:i + 1])
            if not isinstance(group, self.h5py.Group) or part not in group:
                self.fail(path, f"a soft link to {target!r}, which does not exist")
            if not isinstance(group.get(part, getlink=True), self.h5py.HardLink):
                self.fail(path, f"a soft link to {target!r} through another link at {here!r}; not allowed")
            group = group[part]

    def check_storage(self, ds, where) -> None:
        """Refuse a dataset whose reading would leave the file, need a missing filter, or inflate."""
        h5py = self.h5py
        if ds.is_virtual:
            self.fail(where, "a virtual dataset; not allowed (it reads other files)")
        plist = ds.id.get_create_plist()
        if plist.get_external_count():
            self.fail(where, f"a dataset stored in external files {plist.get_external(0)[0]!r}; not allowed")
        if plist.get_layout() not in (h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED, h5py.h5d.COMPACT):
            self.fail(where, f"storage layout {plist.get_layout()} is not allowed")
        for i in range(plist.get_nfilters()):
            code, _, _, name = plist.get_filter(i)
            if not h5py.h5z.filter_avail(code):
                self.fail(where, f"needs HDF5 filter {name.decode(errors='replace')!r} ({code}), which is not "
                                 "available here")
        if len(ds.shape) > MAX_NDIM:
            self.fail(where, f"{len(ds.shape)} dimensions; at most {MAX_NDIM}")
        declared = math.prod(ds.shape) * ds.dtype.itemsize  # Python ints: no overflow
        stored = ds.id.get_storage_size()
        if declared > BOMB_FLOOR and declared > self.ratio * stored:
            self.fail(where, f"declares {ds.shape} ({declared:,} bytes) but stores {stored:,} bytes; refused as "
                             "a shape or decompression bomb")
        if ds.chunks is not None:
            chunk = math.prod(ds.chunks) * ds.dtype.itemsize
            if chunk > max(MAX_CHUNK_BYTES, declared):
                self.fail(where, f"chunks of {ds.chunks} ({chunk:,} bytes) exceed {MAX_CHUNK_BYTES:,} bytes")

    # ---- fetching what a reader needs ----------------------------------------------------------------
    def get(self, key, within=None):
        """The object at ``key`` (relative to group ``within``, default the root), or None; soft links are
        followed only as the walk allowed them."""
        node = self.file if within is None else within
        for part in [p for p in key.split("/") if p]:
            if not isinstance(node, self.h5py.Group):
                self.fail(node.name, f"is a {type(node).__name__}, expected a group holding {key!r}")
            if part not in node:
                return None
            node = node[part]
        return node

    def _fetch(self, key, within, kind, required):
        """The object at ``key`` if it is a ``kind`` (h5py.Group or h5py.Dataset); None if absent and
        not ``required``."""
        obj, where = self.get(key, within), self._where(key, within)
        noun = "a group" if kind is self.h5py.Group else "a dataset"
        if obj is None and required:
            self.fail(where, f"missing; expected {noun}")
        if obj is not None and not isinstance(obj, kind):
            self.fail(where, f"is a {type(obj).__name__}, expected {noun}")
        return obj, where

    def group(self, key, within=None, required=True):
        return self._fetch(key, within, self.h5py.Group, required)[0]

    def dataset(self, key, within=None, kinds=NUMERIC, shape=None, required=True):
        """The dataset at ``key``, numeric (``kinds`` of NumPy dtype) and of ``shape`` if given."""
        obj, where = self._fetch(key, within, self.h5py.Dataset, required)
        if obj is None:
            return None
        self.check_dtype(obj.dtype, where, kinds)
        if shape is not None and tuple(obj.shape) != tuple(shape):
            self.fail(where, f"is {obj.dtype}{tuple(obj.shape)}, expected shape {tuple(shape)}")
        return obj

    def check_dtype(self, dtype, where, kinds=NUMERIC):
        h5py = self.h5py
        special = h5py.check_dtype(ref=dtype) or h5py.check_dtype(vlen=dtype)
        if special is not None or dtype.kind not in kinds or dtype.itemsize > 8 or dtype.fields:
            wanted = {"f": "floats", "i": "integers", "u": "integers", "b": "booleans"}
            names = sorted({wanted[k] for k in kinds})
            self.fail(where, f"has dtype {dtype}{' (references or variable-length)' if special else ''}; "
                             f"expected {' or '.join(names)}")

    def read(self, ds, dtype=None) -> np.ndarray:
        """All of a dataset that ``dataset`` returned (its storage was checked by the walk)."""
        try:
            data = ds[()]
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(ds.name, f"cannot be read ({type(exc).__name__}: {exc})")
        return np.asarray(data) if dtype is None else np.asarray(data, dtype)

    def _where(self, key, within):
        base = "/" if within is None else within.name
        return posixpath.join(base, key)

    # ---- attributes ------------------------------------------------------------------------------
    def attr(self, obj, name, default=None):
        """An attribute's value, or ``default`` if absent; refused if it claims more than the file holds."""
        if name not in obj.attrs:
            return default
        where = f"{obj.name}@{name}"
        aid = obj.attrs.get_id(name)
        if self.h5py.check_dtype(ref=aid.dtype) is not None:
            self.fail(where, "an attribute of references; not allowed")
        declared = math.prod(aid.shape or ()) * max(aid.dtype.itemsize, 1)
        if declared > max(self.size, BOMB_FLOOR):
            self.fail(where, f"an attribute declaring {declared:,} bytes in a {self.size:,}-byte file")
        try:
            return obj.attrs[name]
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            self.fail(where, f"an attribute that cannot be read ({type(exc).__name__}: {exc})")

    def int_attr(self, obj, name, low, high, default=None):
        """An integer attribute in [low, high]: a counter read from a file (epoch, iterations, seed)."""
        value = self.attr(obj, name)
        if value is None:
            return default
        return checked_int(value, low, high, lambda problem: self.fail(f"{obj.name}@{name}", problem))

    def str_attr(self, obj, name, max_bytes, default=None):
        """A text attribute (a JSON config) of at most ``max_bytes``."""
        value = self.attr(obj, name)
        if value is None:
            return default
        if isinstance(value, np.ndarray) and value.shape == () and value.dtype.kind in "SUO":
            value = value[()]
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        if not isinstance(value, str):
            self.fail(f"{obj.name}@{name}", f"is {type(value).__name__}, expected text")
        if len(value) > max_bytes:
            self.fail(f"{obj.name}@{name}", f"is {len(value):,} characters; at most {max_bytes:,}")
        return value


def checked_int(value, low, high, fail):
    """``value`` (a scalar read from a file) as a Python int in [low, high]; else ``fail(problem)``."""
    if isinstance(value, np.ndarray):
        if value.size != 1:
            fail(f"has shape {value.shape}, expected one integer")
        value = value.reshape(())[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        fail(f"is {value} ({type(value).__name__}), expected an integer in [{low}, {high}]")
    value = int(value)
    if not low <= value <= high:
        fail(f"is {value}, expected an integer in [{low}, {high}]")
    return value
