"""Where Keras keeps the data sets it downloads (``~/.keras/datasets``, or ``$KERAS_HOME/datasets``): read
from there too, after mlp_gpu's own places, so a machine that ran Keras once needs no second copy. Nothing
is ever downloaded."""
from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np

from ..data.idx import IDXError

MAX_MEMBER_BYTES = 256 << 20  # MNIST's largest array is 47 MB: a bigger member is no MNIST file
KEYS = ("x_train", "y_train", "x_test", "y_test")


def keras_datasets() -> Path:
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "datasets"


def _check_npy_header(path, member, size):
    """The member's header declares an integer array whose data is exactly what the member holds."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open(member) as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(f)
            header = f.tell()
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise IDXError(f"{path}: damaged .npz member {member} ({exc})") from None
    if dtype.kind not in "ui" or dtype.hasobject:
        raise IDXError(f"{path}: member {member} holds {dtype} values; expected (N, rows, cols) uint8 images "
                       "with (N,) integer labels")
    declared = math.prod(shape) * dtype.itemsize
    if declared != size - header:
        raise IDXError(f"{path}: member {member} declares {dtype}{shape} ({declared} bytes) but holds "
                       f"{size - header} bytes of data")


def read_npz(path: Path):
    """Keras' ``mnist.npz``: ``((x_train, y_train), (x_test, y_test))``, uint8, checked before it is read
    (only plain arrays: no pickles; members no bigger than MAX_MEMBER_BYTES; (N, rows, cols) and (N,))."""
    try:
        with zipfile.ZipFile(path) as archive:
            sizes = {info.filename: info.file_size for info in archive.infolist()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise IDXError(f"{path}: not a readable .npz file ({exc})") from None
    missing = [k for k in KEYS if k + ".npy" not in sizes]
    if missing or any(size > MAX_MEMBER_BYTES for size in sizes.values()):
        raise IDXError(f"{path}: expected the arrays {', '.join(KEYS)} of at most {MAX_MEMBER_BYTES >> 20} MB each, "
                       f"found {sizes}")
    for key in KEYS:  # numpy allocates the shape a header declares: it must match the member's real size
        _check_npy_header(path, key + ".npy", sizes[key + ".npy"])
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in KEYS}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
        raise IDXError(f"{path}: damaged .npz file ({exc})") from None
    for split in ("train", "test"):
        x, y = arrays["x_" + split], arrays["y_" + split]
        if x.dtype != np.uint8 or y.dtype.kind not in "ui" or x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise IDXError(f"{path}: {split} arrays {x.dtype}{x.shape} and {y.dtype}{y.shape} are not (N, rows, "
                           "cols) uint8 images with (N,) labels")
    return (arrays["x_train"], arrays["y_train"].astype(np.uint8)), \
        (arrays["x_test"], arrays["y_test"].astype(np.uint8))
