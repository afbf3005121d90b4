"""Data: the IDX reader, the (Fashion-)MNIST loaders and the train/validation split."""
from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np


FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {"train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
         "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte"}
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
_GZIP_MAX_RATIO = 1100  # deflate cannot expand more than ~1032:1
_MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32  # NumPy's NPY_MAXDIMS
_CHUNK = 1 << 24


class IDXError(ValueError):
    """A file is not a well-formed IDX file; the message says what is wrong."""


def _read(stream, count, path):
    try:
        return stream.read(count)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise IDXError(f"{path}: corrupt compressed data ({exc})") from None


def _read_exact(stream, count, path):
    """Read exactly count bytes in bounded chunks, so a lying header cannot force a huge allocation."""
    parts, got = [], 0
    while got < count:
        chunk = _read(stream, min(_CHUNK, count - got), path)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    if got < count:
        raise IDXError(f"{path}: truncated: header promises {count} data bytes, file holds {got}")
    return b"".join(parts)


def read_idx(path) -> np.ndarray:
    """Read an IDX file (raw or gzip) into an array of the header's shape and type.

    The magic number, the header's sizes and the data length are all checked;
    a header that promises more data than the file can hold is rejected before
    anything is allocated.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"path: {str(path)!r} is a directory, expected an IDX file")
    if not path.exists():
        raise FileNotFoundError(f"path: {str(path)!r} does not exist")
    file_size = path.stat().st_size
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    limit = file_size * _GZIP_MAX_RATIO if compressed else file_size
    opener = gzip.open if compressed else open
    with opener(path, "rb") as f:
        head = _read_exact(f, 4, path)
        if head[:2] != b"\x00\x00" or head[2] not in _IDX_DTYPES or head[3] == 0:
            raise IDXError(f"{path}: bad magic number {head.hex()}: expected 0000 then a type code "
                           f"({', '.join(f'{k:02x}' for k in _IDX_DTYPES)}) and a dimension count")
        dtype, ndim = np.dtype(_IDX_DTYPES[head[2]]), head[3]
        if ndim > _MAX_DIMS:
            raise IDXError(f"{path}: header has {ndim} dimensions; NumPy arrays have at most {_MAX_DIMS}")
        dims = [int(d) for d in np.frombuffer(_read_exact(f, 4 * ndim, path), ">u4")]
        count = math.prod(dims) * dtype.itemsize  # Python ints: a lying header cannot overflow this
        if 4 + 4 * ndim + count > limit:
            raise IDXError(f"{path}: header says shape {tuple(dims)} ({count} bytes) but the file "
                           f"is {file_size} bytes{' compressed' if compressed else ''}")
        if math.prod(d for d in dims if d) >= 1 << 62:  # not even an empty array can have this shape
            raise IDXError(f"{path}: header shape {tuple(dims)} is too large to describe any array")
        data = _read_exact(f, count, path)
        if _read(f, 1, path):  # raw or inside the gzip stream alike
            where = "inside the compressed stream" if compressed else f"({file_size - 4 - 4 * ndim - count} bytes)"
            raise IDXError(f"{path}: data beyond the header's shape {tuple(dims)} {where}")
    return np.frombuffer(data, dtype).astype(dtype.newbyteorder("="), copy=False).reshape(tuple(dims))


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mlp_gpu"


def _candidates(name, path):
    if path is not None:
        return [Path(path)]
    found = []
    if os.environ.get("MLP_GPU_DATA"):
        env = Path(os.environ["MLP_GPU_DATA"])
        found += [env / name, env]
    return found + [default_cache_dir() / name, Path("/usr/share/datasets") / name]


def find_dataset(name: str, path=None) -> dict[str, Path]:
    """Locate the four IDX files of a dataset (raw or .gz), or say where we looked and how to get them."""
    looked = []
    for folder in _candidates(name, path):
        files = {}
        for key, stem in FILES.items():
            hit = next((folder / (stem + ext) for ext in (".gz", "") if (folder / (stem + ext)).is_file()), None)
            if hit is not None:
                files[key] = hit
        if len(files) == len(FILES):
            return files
        looked.append(str(folder))
    hint = ("install the Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist), "
            if name == "fashion-mnist" else "")
    raise FileNotFoundError(
        f"{name}: no complete set of IDX files ({', '.join(FILES.values())}, optionally .gz) in "
        f"{', '.join(looked)}; {hint}or put the files in one of those folders, or set MLP_GPU_DATA")


def _load(name, path, scale):
    files = find_dataset(name, path)
    arrays = {key: read_idx(p) for key, p in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels) or images.dtype != np.uint8:
            raise IDXError(f"{name}: {split} images {images.dtype}{images.shape} and labels "
                           f"{labels.shape} do not pair up as (N, rows, cols) uint8 and (N,)")
    if scale:
        for key in ("train_images", "test_images"):
            arrays[key] = arrays[key].astype(np.float32) / np.float32(255)
    return ((arrays["train_images"], arrays["train_labels"]),
            (arrays["test_images"], arrays["test_labels"]))


def load_fashion_mnist(path=None, scale: bool = False):
    """``((x_train, y_train), (x_test, y_test))`` of Fashion-MNIST, as Keras'
    ``fashion_mnist.load_data()`` returns them: images (N, 28, 28) uint8 0..255, labels uint8.

    Give the uint8 images to ``fit``/``evaluate``/``predict`` as they are: they go to the device at a
    quarter of float32's size and become float32 / 255 there, as each batch is gathered (dividing by
    255.0 first, as Keras tutorials do, gives the same numbers). ``scale=True`` returns float32 in
    [0, 1] instead. Looked for in ``path``, then $MLP_GPU_DATA, the cache folder and /usr/share/datasets.
    """
    return _load("fashion-mnist", path, scale)


def load_mnist(path=None, scale: bool = False):
    """Like :func:`load_fashion_mnist`, for the MNIST digits (folder name ``mnist``)."""
    return _load("mnist", path, scale)
