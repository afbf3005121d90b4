"""Bounded readers for the parts of files that are not HDF5: JSON configs, zip members, ``.npy`` arrays.

Each reads no more than a limit derived from what the file declares and refuses the rest with the
caller's error, naming the file: a config nested 100,000 deep, a 100,000-digit number, a zip member
that inflates beyond its declared size, a ``.npy`` header declaring 10^12 rows in a small file.
"""
from __future__ import annotations

import json
import math
import os
import re
import zipfile

import numpy as np

from .files import ModelFileError
from .safe_h5 import open_regular

MAX_CONFIG_BYTES = 16 << 20  # a config is layers and settings; Normalization's mean fits easily
MAX_DEPTH = 64               # nesting of JSON objects and lists
MAX_DIGITS = 32              # digits of one JSON number (float64 needs 17, int64 19)
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def load_json(text, label, what, error=ModelFileError, max_bytes=MAX_CONFIG_BYTES):
    """Parse JSON read from a file, refusing oversized, too deeply nested or absurd numbers clearly."""
    def fail(problem):
        raise error(f"path: {label!r} {what}: {problem}")

    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            fail(f"is not UTF-8 text ({exc})")
    if len(text) > max_bytes:
        fail(f"is {len(text):,} characters; at most {max_bytes:,}")
    depth = 0
    for m in _TOKENS.finditer(text):  # strings are skipped whole: brackets inside them do not count
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                fail(f"nests deeper than {MAX_DEPTH} levels")
        elif c in "]}":
            depth -= 1

    def number(kind):
        def parse(s):
            if len(s.lstrip("-").replace(".", "").split("e")[0].split("E")[0]) > MAX_DIGITS:
                fail(f"holds a number of {len(s):,} characters; at most {MAX_DIGITS} digits")
            value = kind(s)
            if kind is float and not math.isfinite(value):
                fail(f"holds a number out of range ({s[:40]})")
            return value
        return parse

    def constant(name):
        fail(f"holds {name}, which is not JSON")

    try:
        return json.loads(text, parse_int=number(int), parse_float=number(float), parse_constant=constant)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, error):
            raise
        fail(f"is not valid JSON ({exc})")


# ---- zip members (.keras) --------------------------------------------------------------------------
MAX_MEMBER_RATIO = 100         # inflated / stored bytes, as Keras' _ZIP_MEMBER_MAX_EXPANSION
MEMBER_FLOOR = 1 << 20         # members under 1 MiB may declare any ratio
MAX_ARCHIVE_BYTES = 16 << 30   # all members read from one archive, inflated
_READ = 1 << 20


def read_member(zf: zipfile.ZipFile, name, label, limit, budget, error=ModelFileError):
    """The bytes of member ``name``: at most ``limit`` and its declared size, inflating no more than
    MAX_MEMBER_RATIO times what it stores; ``budget`` ([bytes left]) bounds the whole archive."""
    def fail(problem):
        raise error(f"path: {label!r} member {name!r}: {problem}")

    try:
        info = zf.getinfo(name)
    except KeyError:
        raise error(f"path: {label!r} is a zip without {name}: not a Keras .keras file") from None
    declared = info.file_size
    if declared > limit:
        fail(f"declares {declared:,} bytes; at most {limit:,}")
    if declared > MEMBER_FLOOR and declared > MAX_MEMBER_RATIO * max(info.compress_size, 1):
        fail(f"declares {declared:,} bytes but stores {info.compress_size:,}; refused as a decompression bomb")
    if declared > budget[0]:
        fail(f"would take the archive past {MAX_ARCHIVE_BYTES:,} inflated bytes")
    parts, got = [], 0
    try:
        with zf.open(info) as stream:
            while True:  # a running limit: never more than declared, whatever the stream holds
                chunk = stream.read(min(_READ, declared - got + 1))
                if not chunk:
                    break
                got += len(chunk)
                if got > declared:
                    fail(f"inflates beyond its declared {declared:,} bytes")
                parts.append(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, ValueError, RuntimeError) as exc:
        if isinstance(exc, error):
            raise
        fail(f"cannot be read ({type(exc).__name__}: {exc})")
    if got != declared:
        fail(f"holds {got:,} bytes, declares {declared:,}")
    budget[0] -= got
    return b"".join(parts)


# ---- .npy arrays (predict --input) ------------------------------------------------------------------
MAX_NPY_HEADER = 4096
_NPY_MAGIC = b"\x93NUMPY"
_HEADER = re.compile(r"""\{\s*(?:(?:'descr'\s*:\s*'(?P<descr>[<>|=]?[a-zA-Z]\d{0,2})'|"""
                     r"""'fortran_order'\s*:\s*(?P<fortran>True|False)|"""
                     r"""'shape'\s*:\s*\((?P<shape>[\d\s,]*)\))\s*,?\s*){3}\}\s*$""")


def load_npy(path, error=ValueError) -> np.ndarray:
    """A ``.npy`` file's array, its header parsed without evaluating anything and its shape checked
    against the file's size before anything is allocated; numeric dtypes only, no pickles."""
    def fail(problem):
        raise error(f"path: {str(path)!r}: {problem}")

    with open_regular(path, error, "a .npy array") as fh:
        size = os.fstat(fh.fileno()).st_size
        magic = fh.read(8)
        if magic[:4] == b"PK\x03\x04":
            fail("is a zip archive (an .npz of several arrays?); expected one array in a .npy file "
                 "(np.save, not np.savez)")
        if len(magic) < 8 or magic[:6] != _NPY_MAGIC or magic[6] not in (1, 2, 3):
            fail("is not a .npy file (no \\x93NUMPY magic)")
        width = 2 if magic[6] == 1 else 4
        length = int.from_bytes(fh.read(width), "little")
        if length > MAX_NPY_HEADER:
            fail(f"has a {length:,}-byte header; at most {MAX_NPY_HEADER:,}")
        header = fh.read(length).decode("latin1" if magic[6] < 3 else "utf-8", errors="replace")
        m = _HEADER.match(header.strip())
        if m is None or None in (m.group("descr"), m.group("fortran"), m.group("shape")):
            fail(f"has a header that is not a plain .npy header: {header.strip()[:120]!r}")
        try:
            dtype = np.dtype(m.group("descr"))
        except TypeError:
            fail(f"has dtype {m.group('descr')!r}, which NumPy does not know")
        if dtype.kind not in "fiub":
            fail(f"has dtype {dtype}; expected numbers")
        dims = [d.strip() for d in m.group("shape").split(",") if d.strip()]
        shape = tuple(int(d) for d in dims if len(d) <= 19)
        if len(shape) != len(dims) or len(shape) > 32:
            fail(f"declares shape ({m.group('shape')}), which no array can have")
        offset = 8 + width + length
        count = math.prod(shape) * dtype.itemsize
        if count != size - offset:
            fail(f"declares shape {shape} {dtype} ({count:,} bytes) but holds {size - offset:,} bytes of data")
        data = np.fromfile(fh, dtype, math.prod(shape))
    order = "F" if m.group("fortran") == "True" else "C"
    return data.reshape(shape, order=order)
