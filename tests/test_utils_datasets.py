"""keras.datasets as mlp_gpu has them: Keras' signatures, the local places they read (ours, then Keras'
download folder), Keras' mnist.npz, and errors that name every place looked in."""
import inspect
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu.data import idx
from mlp_gpu.data.idx import IDXError
from mlp_gpu.datasets import fashion_mnist, mnist

from .conftest import write_tiny_dataset


@pytest.fixture
def nowhere(tmp_path, monkeypatch):
    """No data set in mlp_gpu's places (but /usr/share/datasets, which tests cannot empty) nor in Keras'."""
    monkeypatch.setenv("MLP_GPU_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("MLP_GPU_EXAMPLE_ROWS", raising=False)
    return tmp_path


def test_signatures_are_keras():
    keras = pytest.importorskip("keras")
    for ours, theirs in ((fashion_mnist.load_data, keras.datasets.fashion_mnist.load_data),
                         (mnist.load_data, keras.datasets.mnist.load_data)):
        assert inspect.signature(ours) == inspect.signature(theirs)


def test_mnist_reads_idx_files_then_keras_npz_and_says_where_it_looked(nowhere):
    if Path("/usr/share/datasets/mnist").exists():
        pytest.skip("this machine has MNIST installed under /usr/share/datasets")
    with pytest.raises(FileNotFoundError) as info:
        mnist.load_data()
    message = str(info.value)
    for place in (nowhere / "empty", nowhere / "cache", "/usr/share/datasets/mnist", nowhere / "keras" / "datasets"):
        assert str(place) in message
    write_tiny_dataset(nowhere / "empty" / "mnist")
    (x, y), (xt, yt) = mnist.load_data()
    assert x.shape == (240, 28, 28) and x.dtype == np.uint8 and yt.shape == (60,) and yt.dtype == np.uint8
    np.savez(nowhere / "digits.npz", x_train=x, y_train=y.astype(np.int64), x_test=xt, y_test=yt)
    (x2, y2), _ = mnist.load_data(nowhere / "digits.npz")  # Keras' own file, named absolutely
    np.testing.assert_array_equal(x2, x)
    assert y2.dtype == np.uint8
    (nowhere / "keras" / "datasets").mkdir(parents=True)
    np.savez_compressed(nowhere / "keras" / "datasets" / "mnist.npz", x_train=x[:10], y_train=y[:10], x_test=xt,
                        y_test=yt)
    (x3, _), _ = mnist.load_data()  # our IDX files come first
    assert len(x3) == 240
    (nowhere / "empty" / "mnist" / "train-images-idx3-ubyte.gz").unlink()
    (x4, _), _ = mnist.load_data()  # then Keras' download
    assert len(x4) == 10
    with pytest.raises(FileNotFoundError, match="no complete set of IDX files"):
        mnist.load_data(str(nowhere / "empty" / "mnist"))  # a folder: its IDX files, now incomplete


def test_mnist_refuses_bad_files(nowhere):
    with pytest.raises(FileNotFoundError, match="no such file"):
        mnist.load_data("other.npz")
    np.savez(nowhere / "bad.npz", x_train=np.zeros((2, 3)))
    with pytest.raises(IDXError, match="expected the arrays"):
        mnist.load_data(nowhere / "bad.npz")
    np.savez(nowhere / "wrong.npz", x_train=np.zeros((2, 4, 4)), y_train=np.zeros(2, np.uint8),
             x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.zeros(1, np.uint8))
    with pytest.raises(IDXError, match="uint8 images"):
        mnist.load_data(nowhere / "wrong.npz")
    (nowhere / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(IDXError, match="not a readable"):
        mnist.load_data(nowhere / "junk.npz")
    with pytest.raises(TypeError, match="path"):
        mnist.load_data(3)


def test_fashion_mnist_falls_back_to_keras_download_folder(nowhere, monkeypatch):
    candidates = idx._candidates  # this machine may have the Debian package: leave /usr/share out
    monkeypatch.setattr(idx, "_candidates", lambda name, path: [p for p in candidates(name, path)
                                                                if not str(p).startswith("/usr/share")])
    with pytest.raises(FileNotFoundError, match="nor in Keras' download folder"):
        fashion_mnist.load_data()
    write_tiny_dataset(nowhere / "keras" / "datasets" / "fashion-mnist")
    (x, _), (xt, _) = fashion_mnist.load_data()
    assert x.shape == (240, 28, 28) and xt.shape == (60, 28, 28)


def test_fashion_mnist_reads_mlp_gpu_data_first(nowhere):
    write_tiny_dataset(nowhere / "empty" / "fashion-mnist")
    (x, y), _ = fashion_mnist.load_data()
    assert x.shape == (240, 28, 28) and y.dtype == np.uint8
