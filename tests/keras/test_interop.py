"""Keras interchange: the exported layout (always, with h5py), and real Keras where importable."""
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlp_gpu import Dense, Flatten, Input, Sequential
from mlp_gpu.data.idx import load_fashion_mnist
from mlp_gpu.io import ModelFileError, export_keras_weights

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST not installed (make test installs it)")


def reference(backend="numpy"):
    return Sequential([Input((28, 28)), Flatten(), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                      backend=backend)


@pytest.fixture(scope="module")
def fashion():
    (x, y), (xt, yt) = load_fashion_mnist(FASHION)
    return x[:6000], y[:6000], xt, yt


@pytest.fixture(scope="module")
def trained(fashion):
    x, y, _, _ = fashion
    model = reference()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    model.fit(x, y, epochs=1, verbose=0, seed=0)
    return model


def test_export_layout(tmp_path):
    model = reference().build(seed=0)
    export_keras_weights(model, tmp_path / "m.weights.h5")
    with h5py.File(tmp_path / "m.weights.h5", "r") as f:
        assert f["vars"].attrs["name"] == "sequential"
        assert sorted(f["layers"]) == ["dense", "dense_1", "dense_2", "flatten"]
        assert f["layers/dense/vars"].attrs["name"] == "dense"
        assert f["layers/dense/vars/0"].shape == (784, 300) and f["layers/dense/vars/0"].dtype == np.float32
        assert f["layers/dense_2/vars/1"].shape == (10,)
        np.testing.assert_array_equal(f["layers/dense_1/vars/0"][()], model.get_weights()[2])


def test_export_import_round_trip(tmp_path):
    model = reference().build(seed=0)
    export_keras_weights(model, tmp_path / "m.weights.h5")
    other = reference().build(seed=1)
    other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_import_matches_by_order_when_names_differ(tmp_path):
    """Keras numbers layers per session (dense_7, dense_8 ...): creation order decides, dense_10 after dense_9."""
    rng = np.random.default_rng(0)
    shapes = [(4, 3), (3, 2)]
    with h5py.File(tmp_path / "k.weights.h5", "w") as f:
        for name, (i, o) in zip(["dense_9", "dense_10"], shapes):
            g = f.create_group(f"layers/{name}/vars")
            g["0"], g["1"] = rng.normal(size=(i, o)).astype(np.float32), rng.normal(size=o).astype(np.float32)
    model = Sequential([Input((4,)), Dense(3, "relu"), Dense(2, "softmax")], backend="numpy")
    model.load_weights(tmp_path / "k.weights.h5")
    with h5py.File(tmp_path / "k.weights.h5", "r") as f:
        np.testing.assert_array_equal(model.get_weights()[0], f["layers/dense_9/vars/0"][()])
        np.testing.assert_array_equal(model.get_weights()[2], f["layers/dense_10/vars/0"][()])


def test_import_legacy_keras2_file(tmp_path):
    """The Keras 2 layout: attrs layer_names / weight_names, under /model_weights for full saves."""
    rng = np.random.default_rng(1)
    kernels = [rng.normal(size=(4, 3)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)]
    biases = [rng.normal(size=3).astype(np.float32), rng.normal(size=2).astype(np.float32)]
    with h5py.File(tmp_path / "k2.h5", "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [b"input_1", b"hidden", b"out"]
        root.create_group("input_1").attrs["weight_names"] = []
        for name, k, b in zip(["hidden", "out"], kernels, biases):
            g = root.create_group(name)
            g.attrs["weight_names"] = [f"{name}/kernel:0".encode(), f"{name}/bias:0".encode()]
            g[f"{name}/kernel:0"], g[f"{name}/bias:0"] = k, b
    model = Sequential([Input((4,)), Dense(3, "relu"), Dense(2, "softmax")], backend="numpy")
    model.load_weights(tmp_path / "k2.h5")
    for got, want in zip(model.get_weights(), [kernels[0], biases[0], kernels[1], biases[1]]):
        np.testing.assert_array_equal(got, want)


def test_import_rejects_wrong_shapes_and_keeps_weights(tmp_path):
    export_keras_weights(reference().build(seed=0), tmp_path / "m.weights.h5")
    small = Sequential([Input((28, 28)), Flatten(), Dense(30, "relu"), Dense(10, "relu"), Dense(10, "softmax")],
                       backend="numpy").build(seed=0)
    before = small.get_weights()
    with pytest.raises(ModelFileError, match=r"expected float\(784, 30\) for layer 'dense'"):
        small.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(before, small.get_weights()):
        np.testing.assert_array_equal(a, b)


KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import keras
from mlp_gpu.data import load_fashion_mnist
mode, weights, out = sys.argv[1:4]
(x, y), (xt, yt) = load_fashion_mnist()
x, xt = x / 255.0, xt / 255.0  # uint8 pixels, as keras.datasets.fashion_mnist.load_data() gives them
model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(300, activation="relu"),
                          keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10, activation="softmax")])
if mode == "load":
    model.load_weights(weights)
else:
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="sparse_categorical_crossentropy")
    model.fit(x[:6000], y[:6000], batch_size=32, epochs=1, verbose=0)
    model.save_weights(weights)
np.save(out, model.predict(xt, batch_size=1000, verbose=0).argmax(axis=1))
print(json.dumps({"backend": keras.backend.backend()}))
"""


def _keras(*args, tmp_path):
    if not _importable("keras"):  # checked without importing: Keras picks its backend at import
        pytest.skip("keras not installed")
    if not _importable("torch"):  # Keras' numpy backend needs jax and cannot train: use torch
        pytest.skip("Keras needs a backend here: PyTorch (make peers) is not installed")
    script = tmp_path / "keras_side.py"
    script.write_text(KERAS_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


@needs_data
def test_exported_model_predicts_same_classes_in_keras(trained, fashion, tmp_path):
    export_keras_weights(trained, tmp_path / "ours.weights.h5")
    _keras("load", tmp_path / "ours.weights.h5", tmp_path / "keras_pred.npy", tmp_path=tmp_path)
    ours = trained.predict(fashion[2]).argmax(axis=1)
    theirs = np.load(tmp_path / "keras_pred.npy")
    assert (ours == theirs).mean() >= 0.999  # float32 ties aside, the same classes
    assert (ours == fashion[3]).mean() > 0.6  # and a model that learnt something


@needs_data
def test_keras_weights_imported_predict_same_classes(fashion, tmp_path):
    info = _keras("train", tmp_path / "keras.weights.h5", tmp_path / "keras_pred.npy", tmp_path=tmp_path)
    model = reference()
    model.load_weights(tmp_path / "keras.weights.h5")
    ours = model.predict(fashion[2]).argmax(axis=1)
    assert (ours == np.load(tmp_path / "keras_pred.npy")).mean() >= 0.999, info
