"""A minimal safe write for the files other programs read (ONNX, Keras zip): temp file, fsync, rename.

Until the shared writer (``mlp_gpu.io.files.atomic_write_bytes``) lands, this is the one place these
formats write through; the file at ``path`` is either the old one or all of ``data``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .hdf5 import check_save_target


def atomic_write_bytes(path, data: bytes) -> None:
    path = Path(path)
    folder = check_save_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with open(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
