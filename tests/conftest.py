"""Shared fixtures: backends to run on, small data sets, IDX writers."""
from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from mlp_gpu.backend import available_backends, get_backend

CUPY_REASON = available_backends()["cupy"]
requires_gpu = pytest.mark.skipif(CUPY_REASON is not None, reason=f"no GPU: {CUPY_REASON}")


def central_differences(f, values, eps=1e-6):
    """(f(v + eps) - f(v - eps)) / (2 eps) for each element v of ``values``, changed in place and restored:
    the float64 reference every gradient test compares with."""
    numeric = np.empty(values.shape)
    for idx in np.ndindex(*values.shape):
        keep = values[idx]
        values[idx] = keep + eps
        up = f()
        values[idx] = keep - eps
        down = f()
        values[idx] = keep
        numeric[idx] = (up - down) / (2 * eps)
    return numeric


def write_idx(path, array, compress=None):
    """Write an array as an IDX file (big-endian), gzip-compressed if the name ends in .gz."""
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
    array = np.asarray(array)
    code = codes[array.dtype.type]
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    compress = str(path).endswith(".gz") if compress is None else compress
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(payload)
    return path


def write_tiny_dataset(folder, n_train=240, n_test=60, seed=0):
    """A learnable 10-class 28×28 set: each class lights its own band of rows."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k:2 * k + 3] = 250
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture
def tiny_dataset(tmp_path):
    return write_tiny_dataset(tmp_path / "tiny")


def blobs(n=300, features=8, classes=3, seed=0):
    """Well-separated Gaussian blobs: a convergence test any working trainer passes."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (classes, features))
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(0, 0.5, (n, features))
    return x.astype(np.float32), y.astype(np.int32)


@pytest.fixture
def numpy_backend():
    return get_backend("numpy")


def pytest_terminal_summary(terminalreporter):
    """Report the registers and spills nvcc gave each kernel (collected by test_kernels)."""
    from tests.kernels import test_kernels

    if test_kernels.RESOURCES:
        terminalreporter.write_line("kernel registers / spill bytes (nvcc -arch=sm_90 --resource-usage):")
        for name, usage in sorted(test_kernels.RESOURCES.items()):
            terminalreporter.write_line(f"  {name:24s} {usage.get('registers', '?'):>4} regs  "
                                        f"{usage.get('spill_bytes', 0)} spill bytes")


# Fuzz budgets: a quick one in `make test`, a long one in `make fuzz` (HYPOTHESIS_PROFILE=long).
try:
    from hypothesis import settings as _settings

    _settings.register_profile("default", max_examples=60)
    _settings.register_profile("long", max_examples=5000)
    _settings.load_profile(__import__("os").environ.get("HYPOTHESIS_PROFILE", "default"))
except ImportError:  # the device machine may lack hypothesis; its tests then skip
    pass
