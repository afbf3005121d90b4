"""Hostile files for tests/io/test_hostile_files.py, each made by the test from a valid file of its format.

Model files are resealed after every edit (an attacker recomputes our SHA-256), so every check that
matters has to hold on a file whose seal is right. Files that reach outside themselves point at the
canary: ``canary.bin`` (raw bytes) and ``canary.h5`` (datasets made of the same bytes).
"""
from __future__ import annotations

import gzip
import io
import json
import os
import struct
import zipfile
from pathlib import Path

import h5py
import numpy as np

from mlp_gpu.optimizers import Adam, Nadam
from mlp_gpu.data.hdf5 import write_hdf5
from mlp_gpu.io import export_keras_weights, files

from .hostile_child import CANARY, base_model

KERNEL = (3, 4)  # the first Dense kernel of base_model()
ROWS = (60, 3)   # x of data_file()
STATE = (2, 26)  # Adam's optimizer/state for base_model()
CANARY_SETS = {KERNEL: "m", ROWS: "rows", (20, 3): "test_rows", STATE: "state"}  # canary.h5's datasets, by shape


def canaries(folder: Path):
    """(canary.bin, canary.h5) in folder: the files no hostile file may read."""
    raw = folder / "canary.bin"
    raw.write_bytes(CANARY * 512)
    with h5py.File(folder / "canary.h5", "w") as f:
        for shape, name in CANARY_SETS.items():
            f[name] = np.frombuffer(CANARY * (int(np.prod(shape)) // 2), np.float32).reshape(shape)
    return raw, folder / "canary.h5"


def trained(optimizer=None):
    model = base_model().build(seed=0)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer or Adam(0.01), seed=0)
    return model


def model_file(folder, name="m.h5", optimizer=None):
    path = folder / name
    trained(optimizer).save(path)
    return path


def keras_weights_file(folder, name="m.weights.h5"):
    path = folder / name
    export_keras_weights(trained(), path)
    return path


def keras2_file(folder, name="legacy.h5"):
    """A Keras 2 weights-only layout: layer_names, weight_names, dense/dense/kernel:0 ..."""
    path = folder / name
    model = trained()
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [layer.name.encode() for layer in model.layers]
        for layer in model.layers:
            g = f.create_group(layer.name)
            names = [f"{layer.name}/{n}:0" for n in layer.weight_names()]
            g.attrs["weight_names"] = [n.encode() for n in names]
            for n, w in zip(names, layer.get_weights()):
                g[n] = w
    return path


def data_file(folder, name="d.h5", labels=None, classes=3):
    rng = np.random.default_rng(0)
    x = rng.random(ROWS, dtype=np.float32)
    y = rng.integers(0, 3, ROWS[0]).astype(np.int32) if labels is None else np.asarray(labels, np.int64)
    return Path(write_hdf5(folder / name, x, y, test=(x[:20], y[:20]), attrs={} if classes is None
                           else {"classes": classes}))


def edit_h5(path, change, reseal=None):
    """Apply ``change(h5file)``; reseal an mlp_gpu file as an attacker would."""
    with h5py.File(path, "r+") as f:
        change(f)
    data = Path(path).read_bytes()
    if reseal or (reseal is None and data.startswith(files.SEAL)):
        Path(path).write_bytes(files.seal(data))
    return path


# ---- what an edit puts where a weight was: each takes (file, key, folder) ------------------------------
def replace(maker):
    def change(f, key, folder):
        shape = f[key].shape if key in f and isinstance(f[key], h5py.Dataset) else KERNEL
        if key in f:
            del f[key]
        maker(f, key, folder, shape)
    return change


def _external_link(f, key, folder, shape):
    f[key] = h5py.ExternalLink(str(folder / "canary.h5"), "/m")


def _external_storage(f, key, folder, shape):
    f.create_dataset(key, shape, np.float32, external=[(str(folder / "canary.bin"), 0, 4 * int(np.prod(shape)))])


def _virtual(f, key, folder, shape):
    layout = h5py.VirtualLayout(shape, np.float32)
    layout[...] = h5py.VirtualSource(str(folder / "canary.h5"), CANARY_SETS[tuple(shape)], shape)
    f.create_virtual_dataset(key, layout)


def _soft_outside(f, key, folder, shape):
    f["stash/k"] = np.frombuffer(CANARY * 6, np.float32).reshape(KERNEL)
    f[key] = h5py.SoftLink("/stash/k")


def _soft_dangling(f, key, folder, shape):
    f[key] = h5py.SoftLink(key + "_gone")


def _strings(f, key, folder, shape):
    f.create_dataset(key, data=np.full(shape, b"1.5"))


def _references(f, key, folder, shape):
    f.create_dataset(key, shape, dtype=h5py.ref_dtype)


def _compound(f, key, folder, shape):
    f.create_dataset(key, shape, dtype=np.dtype([("a", "<f4")]))


def _missing_filter(f, key, folder, shape):
    f.create_dataset(key, shape, np.float32, chunks=shape, compression=32010, allow_unknown_filter=True)


def _shape_bomb(f, key, folder, shape):
    f.create_dataset(key, (10**6,) * len(shape) if len(shape) == 2 else (10**12,), np.float32,
                     chunks=(1000,) * len(shape))


def _group(f, key, folder, shape):
    f.create_group(key)


WEIGHT_ATTACKS = {"external-link": (_external_link, "external link"),
                  "external-storage": (_external_storage, "stored in external files"),
                  "virtual": (_virtual, "virtual dataset"),
                  "soft-link-outside": (_soft_outside, "soft link to '/stash/k', outside"),
                  "soft-link-dangling": (_soft_dangling, "does not exist"),
                  "strings": (_strings, "dtype \\|S3"),
                  "references": (_references, "references"),
                  "compound": (_compound, "dtype \\[\\('a'"),
                  "missing-filter": (_missing_filter, "needs HDF5 filter .*32010.* not available"),
                  "shape-bomb": (_shape_bomb, "declares .* bomb"),
                  "group": (_group, "is a Group, expected a dataset")}


# ---- .keras zips ----------------------------------------------------------------------------------
def keras_zip(folder, name="m.keras"):
    path = folder / name
    trained().save(path)
    return path


def rezip(path, config=None, weights=None, members=None, compression=zipfile.ZIP_STORED):
    """Rewrite a .keras file with ``config(dict) -> dict|str``, ``weights(h5file)`` and extra members."""
    with zipfile.ZipFile(path) as zf:
        parts = {n: zf.read(n) for n in zf.namelist()}
    if config is not None:
        new = config(json.loads(parts["config.json"]))
        parts["config.json"] = new if isinstance(new, (bytes, str)) else json.dumps(new)
    if weights is not None:
        buffer = io.BytesIO(parts["model.weights.h5"])
        with h5py.File(buffer, "r+") as f:
            weights(f)
        parts["model.weights.h5"] = buffer.getvalue()
    parts.update(members or {})
    with zipfile.ZipFile(path, "w", compression) as zf:
        for n, data in parts.items():
            zf.writestr(n, data)
    return path


def keras_layers(config):
    return config["config"]["layers"]


def wide_dense(config):
    keras_layers(config)[1]["config"]["units"] = 2_000_000
    return config


def huge_input(config):
    layers = keras_layers(config)
    layers[0]["config"]["batch_shape"] = [None, 100_000, 100_000]
    layers.insert(1, {"module": "keras.layers", "class_name": "Flatten", "config": {"name": "flatten"},
                      "registered_name": None})
    return config


# ---- configs in our .h5 -----------------------------------------------------------------------------
def set_model_config(edit):
    def change(f):
        config = json.loads(f.attrs["model_config"])
        new = edit(config)
        f.attrs["model_config"] = new if isinstance(new, str) else json.dumps(new)
    return change


def our_wide_dense(config):
    config["layers"][1]["config"]["units"] = 2_000_000
    return config


def our_huge_input(config):
    config["layers"][0]["config"]["shape"] = [100_000, 100_000]
    config["layers"].insert(1, {"class_name": "Flatten", "config": {"name": "flatten"}})
    return config


DEEP = "[" * 100_000 + "]" * 100_000
LONG_NUMBER = '{"layers": [{"class_name": "Dense", "config": {"units": 1' + "0" * 100_000 + "}}]}"


# ---- IDX, .npy, FIFOs -------------------------------------------------------------------------------
def idx_gzip_bomb(folder, name="bomb-images-idx3-ubyte.gz"):
    """A gzip IDX whose header truthfully declares 64 MiB of zeros, stored in ~64 KB (1000:1)."""
    rows = (64 << 20) // 784
    header = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", rows, 28, 28)
    path = folder / name
    path.write_bytes(gzip.compress(header + bytes(rows * 784), 6))
    return path


def npy_with_header(folder, name, header: str, data=b"\0" * 16, version=1):
    text = header.encode("latin1")
    text += b" " * (63 - (len(text) + 10) % 64) + b"\n"
    size = struct.pack("<H" if version == 1 else "<I", len(text))
    path = folder / name
    path.write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + text + data)
    return path


def fifo(folder, name):
    path = folder / name
    os.mkfifo(path)
    return path


def nadam_file(folder, iterations):
    path = model_file(folder, "nadam.h5", optimizer=Nadam(0.01))
    return edit_h5(path, lambda f: f["optimizer"].attrs.__setitem__("iterations", iterations))
