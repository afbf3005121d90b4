"""HDF5 files: saved against loaded, bit for bit, and clear errors for files that do not fit."""
import h5py
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Adam, Dense, Input, Sequential
from mlp_gpu.io import ModelFileError

from ..conftest import blobs


def trained(optimizer=None, epochs=2):
    x, y = blobs()
    model = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=optimizer or SGD(0.05, momentum=0.9), metrics=["accuracy"], seed=0)
    model.fit(x, y, epochs=epochs, verbose=0, seed=0)
    return model, x, y


@pytest.mark.parametrize("optimizer", [SGD(0.05, momentum=0.9), Adam(0.01), SGD(0.02)])
def test_save_load_round_trip_is_bit_exact(tmp_path, optimizer):
    model, x, y = trained(optimizer)
    path = tmp_path / "m.h5"
    model.save(path)
    loaded = mlp_gpu.load_model(path)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert b.dtype == np.float32
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.optimizer.state, loaded.optimizer.state)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert loaded.epochs_done == 2 and loaded.fit_seed == 0
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))


def test_resumed_training_matches_uninterrupted(tmp_path):
    """Saved optimizer state is the whole state: continuing from a file equals not stopping."""
    x, y = blobs()
    straight, _, _ = trained(epochs=0)
    straight.fit(x, y, epochs=1, verbose=0, seed=0, shuffle=False)
    straight.save(tmp_path / "m.h5")
    straight.fit(x, y, epochs=1, verbose=0, seed=0, shuffle=False)
    resumed = mlp_gpu.load_model(tmp_path / "m.h5")
    resumed.fit(x, y, epochs=1, verbose=0, seed=0, shuffle=False)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_file_layout_is_documented_float32(tmp_path):
    model, _, _ = trained()
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert f.attrs["format"] == "mlp_gpu" and f.attrs["format_version"] == 1
        assert f["weights/dense/kernel"].shape == (8, 16) and f["weights/dense/kernel"].dtype == np.float32
        assert f["weights/dense_1/bias"].shape == (3,)
        assert f["optimizer/state"].shape == (1, model.count_params())


def test_save_weights_and_load_weights(tmp_path):
    model, x, _ = trained()
    model.save_weights(tmp_path / "w.h5")
    fresh = Sequential([Input((8,)), Dense(16, "relu"), Dense(3, "softmax")], backend="numpy")
    fresh.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(fresh.predict(x), model.predict(x))
    with h5py.File(tmp_path / "w.h5", "r") as f:
        assert "optimizer" not in f


def test_wrong_architecture_is_rejected_and_weights_untouched(tmp_path):
    model, _, _ = trained()
    model.save_weights(tmp_path / "w.h5")
    other = Sequential([Input((8,)), Dense(15, "relu"), Dense(3, "softmax")], backend="numpy").build(seed=1)
    before = other.get_weights()
    with pytest.raises(ModelFileError, match=r"weights/dense/kernel.*expected float32\(8, 15\)"):
        other.load_weights(tmp_path / "w.h5")
    for a, b in zip(before, other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_failed_save_keeps_previous_file(tmp_path, monkeypatch):
    model, x, _ = trained()
    path = tmp_path / "m.h5"
    model.save(path)
    expected = mlp_gpu.load_model(path).get_weights()
    import mlp_gpu.io.hdf5 as hdf5

    def broken(f, m):
        f.attrs["format"] = "mlp_gpu"
        raise OSError("disk full")

    monkeypatch.setattr(hdf5, "_write_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["m.h5"]  # no temp file left behind
    for a, b in zip(expected, mlp_gpu.load_model(path).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_load_weights_reads_a_keras_zip_as_keras_does(tmp_path):
    def net():
        return Sequential([Input((6,)), Dense(5, "relu"), Dense(3, "softmax")], backend="numpy")

    saved = net()
    saved.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=1)
    saved.save(tmp_path / "m.keras")
    fresh = net()
    fresh.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=2)
    fresh.load_weights(tmp_path / "m.keras")
    for a, b in zip(saved.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    other = Sequential([Input((6,)), Dense(4, "relu"), Dense(3, "softmax")], backend="numpy")
    other.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=3)
    before = other.get_weights()
    with pytest.raises((ModelFileError, ValueError)):
        other.load_weights(tmp_path / "m.keras")
    for a, b in zip(before, other.get_weights(), strict=True):  # nothing changed
        np.testing.assert_array_equal(a, b)
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="not a valid .keras file"):
        fresh.load_weights(tmp_path / "bad.keras")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fresh.load_weights(tmp_path / "missing.keras")
