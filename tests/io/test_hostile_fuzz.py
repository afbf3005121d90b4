"""Fuzzing the loaders with hostile files (issue #23): valid files of each format, mutated byte by byte or
edited object by object (a dataset of another dtype, shape or storage, a link, an attribute), then
resealed where the format has a seal. The only outcomes allowed are a load (with no canary bytes in the
weights) or the loader's documented error, under a memory limit. ``make fuzz`` runs the long budget.
"""
from __future__ import annotations

import contextlib
import functools
import resource
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlp_gpu
from mlp_gpu.data.hdf5 import open_hdf5
from mlp_gpu.io import ModelFileError, files
from mlp_gpu.io.bounded import load_npy

from . import hostile as H
from .hostile_child import CANARY, base_model

pytestmark = pytest.mark.fuzz
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)


@contextlib.contextmanager
def memory_limit(extra=1 << 30):
    """At most ``extra`` bytes of address space beyond what this process has now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = int(Path("/proc/self/status").read_text().split("VmSize:")[1].split()[0]) * 1024
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra if hard == resource.RLIM_INFINITY else min(hard, vm + extra),
                                            hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@functools.lru_cache(maxsize=None)
def valid(kind) -> bytes:
    """The bytes of a valid file of each format (made once; the canary files sit in a lasting folder)."""
    folder = Path(FOLDER.name)
    path = {"h5": lambda: H.model_file(folder, "m.h5"), "keras_h5": lambda: H.keras_weights_file(folder),
            "keras": lambda: H.keras_zip(folder), "data": lambda: H.data_file(folder)}[kind]()
    return path.read_bytes()


FOLDER = tempfile.TemporaryDirectory()
H.canaries(Path(FOLDER.name))


def _mutate(data, edits):
    data = bytearray(data)
    for pos, value in edits:
        data[pos % len(data)] = value
    return bytes(data)


def _no_canary(arrays):
    assert CANARY not in b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)


def _load(kind, path):
    """Load a file of ``kind``; return the arrays it gave, for the canary check."""
    if kind == "data":
        x, y = open_hdf5(path)
        try:  # a damaged chunk is an OSError when read, as fit would meet it; the guard's work is done
            return [x[:], y[:]]
        except OSError:
            return []
    if kind == "keras_h5":
        model = base_model().build(seed=0)
        model.load_weights(path)
    else:
        model = mlp_gpu.load_model(path, backend="numpy")
    return model.get_weights()


def _check(kind, path):
    error = ValueError if kind == "data" else ModelFileError
    with memory_limit():
        try:
            arrays = _load(kind, path)
        except error:
            return
    _no_canary(arrays)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), min_size=1, max_size=8)


@FUZZ
@given(kind=st.sampled_from(["h5", "keras_h5", "data"]), edits=EDITS)
def test_fuzz_hdf5_bytes(tmp_path, kind, edits):
    data = _mutate(valid(kind), edits)
    if data.startswith(files.SEAL):
        with contextlib.suppress(ValueError):  # an attacker reseals what still has its user block
            data = files.seal(data)
    path = tmp_path / f"f.{kind}.h5"
    path.write_bytes(data)
    _check(kind, path)


@FUZZ
@given(member=st.sampled_from(["config.json", "model.weights.h5"]), edits=EDITS,
       deflate=st.booleans())
def test_fuzz_keras_zip_members(tmp_path, member, edits, deflate):
    """Mutated inside the zip and zipped again, so the CRC holds and the mutation reaches the reader."""
    path = tmp_path / "f.keras"
    path.write_bytes(valid("keras"))
    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    parts[member] = _mutate(parts[member], edits)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as zf:
        for n, blob in parts.items():
            zf.writestr(n, blob)
    _check("keras", path)


# ---- object-level edits: what an attacker writes with h5py ------------------------------------------
SHAPES = st.one_of(st.just(()), st.lists(st.sampled_from([0, 1, 2, 3, 4, 26, 10**6, 10**12]), min_size=1,
                                         max_size=3).map(tuple))
DTYPES = st.sampled_from(["f4", "f8", "f2", "i8", "u1", "b1", "S3", "ref", "compound", "vlen"])
STORAGE = st.sampled_from(["data", "empty", "chunked", "gzip", "external", "virtual", "unknown-filter"])


def _dtype(name):
    special = {"ref": h5py.ref_dtype, "compound": np.dtype([("a", "<f4")]), "vlen": h5py.string_dtype()}
    return special[name] if name in special else np.dtype(name)


def _new_dataset(f, key, shape, dtype, storage, folder):
    dtype = _dtype(dtype)
    size = int(np.prod(shape)) if shape else 1
    chunks = tuple(max(1, min(d, 1000)) for d in shape) if shape and all(shape) else None
    if storage == "data" and size <= 4096 and dtype.kind in "fiub":
        f.create_dataset(key, data=np.ones(shape, dtype))
    elif storage == "external" and dtype.kind in "fiub":
        f.create_dataset(key, shape, dtype, external=[(str(folder / "canary.bin"), 0, size * dtype.itemsize)])
    elif storage == "virtual" and shape == H.KERNEL:
        H.replace(H.WEIGHT_ATTACKS["virtual"][0])(f, key, folder)
    elif storage in ("chunked", "gzip", "unknown-filter") and chunks:
        options = {"gzip": {"compression": "gzip"},
                   "unknown-filter": {"compression": 32010, "allow_unknown_filter": True}}.get(storage, {})
        f.create_dataset(key, shape, dtype, chunks=chunks, **options)
    else:
        f.create_dataset(key, shape, dtype)


VALUES = st.one_of(st.integers(-(2**70), 2**70).map(lambda v: np.int64(v) if -(2**63) <= v < 2**63 else str(v)),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                   st.just(np.arange(3)), st.just(np.uint64(2**64 - 1)), st.just("[" * 500))
ATTRS = ["format", "format_version", "model_config", "training_config", "iterations", "epoch", "draws", "seed",
         "layer_names", "weight_names", "classes"]


def _edit(f, op, pick, args, folder):
    names = []
    f.visit(names.append)
    if not names:  # everything deleted: the next edit makes something again
        names = ["x"]
    key = sorted(names)[pick % len(names)]
    if op == "delete" and key in f:
        del f[key]
    elif op == "dataset":
        if key in f:
            del f[key]
        _new_dataset(f, key, *args[:3], folder)
    elif op == "group":
        if key in f:
            del f[key]
        f.create_group(key)
    elif op == "soft":
        if key in f:
            del f[key]
        f[key] = h5py.SoftLink("/" + sorted(names)[args[3] % len(names)])
    elif op == "external":
        if key in f:
            del f[key]
        f[key] = h5py.ExternalLink(str(folder / "canary.h5"), "/m")
    elif op == "attr":
        target = f[key] if key in f and args[3] % 2 else f
        target.attrs[ATTRS[args[3] % len(ATTRS)]] = args[4]


OPS = st.lists(st.tuples(st.sampled_from(["delete", "dataset", "group", "soft", "external", "attr"]),
                         st.integers(0, 1000), st.tuples(SHAPES, DTYPES, STORAGE, st.integers(0, 1000), VALUES)),
               min_size=1, max_size=4)


@FUZZ
@given(kind=st.sampled_from(["h5", "keras_h5", "keras", "data"]), ops=OPS)
def test_fuzz_hdf5_objects(tmp_path, kind, ops):
    folder = Path(FOLDER.name)
    path = tmp_path / ("f.keras" if kind == "keras" else f"f.{kind}.h5")
    path.write_bytes(valid(kind))

    def change(f):
        for op, pick, args in ops:
            try:
                _edit(f, op, pick, args, folder)
            except (ValueError, TypeError, KeyError, OSError, RuntimeError, OverflowError):
                pass  # an edit h5py itself refuses: the others still make a hostile file

    if kind == "keras":
        H.rezip(path, weights=change)
    else:
        H.edit_h5(path, change)
    _check(kind, path)


@FUZZ
@given(edits=EDITS, cut=st.one_of(st.none(), st.integers(0, 200)))
def test_fuzz_npy(tmp_path, edits, cut):
    path = tmp_path / "x.npy"
    np.save(path, np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    data = _mutate(path.read_bytes(), [(p % 160, v) for p, v in edits])
    path.write_bytes(data if cut is None else data[:cut])
    with memory_limit():
        try:
            out = load_npy(path)
        except ValueError:
            return
    assert out.dtype.kind in "fiub" and out.nbytes <= len(data)
