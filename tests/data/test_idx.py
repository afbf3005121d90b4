"""The IDX reader and the dataset loaders."""
import gzip
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu import data
from mlp_gpu.data.idx import IDXError, read_idx

from ..conftest import write_idx

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
@pytest.mark.parametrize("array", [np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
                                   np.array([-3, 7], np.int32), np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2)])
def test_round_trip(tmp_path, name, array):
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.shape == array.shape and out.dtype == array.dtype
    np.testing.assert_array_equal(out, array)


def test_bad_magic(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(IDXError, match="bad magic number 01020801"):
        read_idx(tmp_path / "x")


def test_truncated(tmp_path):
    path = write_idx(tmp_path / "x", np.zeros((10, 4), np.uint8))
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(IDXError, match="header says shape"):
        read_idx(path)


def test_truncated_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (100).to_bytes(4, "big") + bytes(60)))
    with pytest.raises(IDXError, match="truncated: header promises 100 data bytes, file holds 60"):
        read_idx(path)


def test_huge_header_in_tiny_file_is_rejected_before_allocating(tmp_path):
    (tmp_path / "x").write_bytes(b"\x00\x00\x08\x03" + b"\xff\xff\xff\xff" * 3)
    with pytest.raises(IDXError, match="header says shape"):
        read_idx(tmp_path / "x")


@pytest.mark.parametrize("compress", [False, True])
def test_trailing_bytes_raw_or_inside_gzip(tmp_path, compress):
    path = write_idx(tmp_path / "x", np.zeros(4, np.uint8), compress=False)
    data = path.read_bytes() + b"extra"
    path.write_bytes(gzip.compress(data) if compress else data)
    with pytest.raises(IDXError, match=r"beyond the header's shape \(4,\)"):
        read_idx(path)


def test_corrupt_gzip(tmp_path):
    good = gzip.compress(b"\x00\x00\x08\x01" + (1000).to_bytes(4, "big") + bytes(1000))
    (tmp_path / "x.gz").write_bytes(good[:20] + b"\xff" * 10 + good[30:])
    with pytest.raises(IDXError):
        read_idx(tmp_path / "x.gz")


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("MLP_GPU_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*MLP_GPU_DATA"):
        data.load_mnist()


def test_explicit_folder(tiny_dataset):
    (x, y), (xt, yt) = data.load_fashion_mnist(tiny_dataset, scale=True)
    assert x.shape == (240, 28, 28) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    (xu, yu), _ = data.load_fashion_mnist(tiny_dataset)  # as Keras' load_data(): uint8 pixels and labels
    assert xu.dtype == np.uint8 and yu.dtype == np.uint8
    np.testing.assert_allclose(xu / np.float32(255), x)


def test_split_validation_takes_the_first_rows():
    x, y = np.arange(10), np.arange(10) * 2
    (xt, yt), (xv, yv) = data.split_validation(x, y, 3)
    np.testing.assert_array_equal(xv, [0, 1, 2])
    np.testing.assert_array_equal(yt, y[3:])
    with pytest.raises(ValueError, match=r"size: expected an int in \[1, 9\], got 10"):
        data.split_validation(x, y, 10)


@pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed (make test installs it)")
def test_real_fashion_mnist():
    (x, y), (xt, yt) = data.load_fashion_mnist(FASHION)
    assert x.shape == (60000, 28, 28) and xt.shape == (10000, 28, 28)
    assert x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
    assert np.bincount(yt).tolist() == [1000] * 10
    (xs, ys), (xv, yv) = data.split_validation(x, y)
    assert len(xs) == 55000 and len(xv) == 5000


def test_zero_dimension_beside_huge_ones(tmp_path):
    """Found by fuzzing: a 0 among huge sizes made a 0-byte array no NumPy shape can describe."""
    header = b"\x00\x00\x08\x04" + b"\x10\x00\x00\x02" * 3 + b"\x00\x00\x00\x00"
    (tmp_path / "x").write_bytes(header)
    with pytest.raises(IDXError, match="too large to describe any array"):
        read_idx(tmp_path / "x")
