"""Keras 3 interchange for the toolbox layers, both directions, against real Keras (a peer run in a
subprocess): BatchNormalization's gamma, beta, moving_mean, moving_variance and Normalization's
mean, variance, count in Keras' order; and the parameter counts Keras' summary prints."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu import BatchNormalization, Dense, Dropout, Flatten, Input, Normalization, Sequential

from .test_interop import _importable

KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import keras
folder = sys.argv[1]
x, y = np.load(folder + "/x.npy"), np.load(folder + "/y.npy")
L = keras.layers
def small():
    return keras.Sequential([keras.Input((8,)), L.Normalization(), L.Dense(16, activation="relu"),
                             L.BatchNormalization(), L.Dropout(0.3), L.Dense(3, activation="softmax")])
theirs = small()
theirs.load_weights(folder + "/ours.weights.h5")
np.save(folder + "/keras_on_ours.npy", theirs.predict(x, verbose=0))
keras.utils.set_random_seed(0)
trained = small()
trained.layers[0].adapt(x)
trained.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
trained.fit(x, y, batch_size=16, epochs=2, verbose=0)
trained.save_weights(folder + "/keras.weights.h5")
np.save(folder + "/keras_pred.npy", trained.predict(x, verbose=0))
big = keras.Sequential([keras.Input((28, 28)), L.Flatten(), L.Dense(300, activation="relu"), L.BatchNormalization(),
                        L.Dropout(0.2), L.Dense(100, activation="relu"), L.BatchNormalization(), L.Dropout(0.2),
                        L.Dense(10, activation="softmax")])
trainable = sum(int(np.prod(w.shape)) for w in big.trainable_weights)
print(json.dumps({"total": big.count_params(), "trainable": trainable,
                  "names": [[w.path.split("/")[-1] for w in layer.weights] for layer in trained.layers]}))
"""


def small(norm=None):
    return Sequential([Input((8,)), norm or Normalization(), Dense(16, "relu"), BatchNormalization(), Dropout(0.3),
                       Dense(3, "softmax")], backend="numpy")


@pytest.fixture(scope="module")
def peer(tmp_path_factory):
    if not (_importable("keras") and _importable("torch")):
        pytest.skip("Keras with PyTorch (make peers) is not installed")
    folder = tmp_path_factory.mktemp("keras_toolbox")
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(96, 8)) * [1, 2, 3, 4, 5, 6, 7, 8] + 3).astype(np.float32)
    y = (x[:, 0] > 3).astype(np.int32) + (x[:, 1] > 5)
    np.save(folder / "x.npy", x)
    np.save(folder / "y.npy", y)
    norm = Normalization()
    norm.adapt(x)
    ours = small(norm)
    ours.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
    ours.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)  # moves the BN statistics off their start
    from mlp_gpu.io import export_keras_weights
    export_keras_weights(ours, folder / "ours.weights.h5")
    script = folder / "peer.py"
    script.write_text(KERAS_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "torch", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run([sys.executable, str(script), str(folder)], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return folder, x, ours, json.loads(proc.stdout.strip().splitlines()[-1])


def test_keras_loads_our_weights_and_predicts_the_same(peer):
    folder, x, ours, _ = peer
    np.testing.assert_allclose(np.load(folder / "keras_on_ours.npy"), ours.predict(x), rtol=1e-4, atol=1e-6)


def test_we_load_keras_weights_and_predict_the_same(peer):
    folder, x, _, info = peer
    model = small()
    model.load_weights(folder / "keras.weights.h5")
    np.testing.assert_allclose(model.predict(x), np.load(folder / "keras_pred.npy"), rtol=1e-4, atol=1e-6)
    assert info["names"][0] == ["mean", "variance", "count"]
    assert info["names"][2] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [layer.weight_names() for layer in model.compute_layers[:3]][0::2] == info["names"][0:3:2]
    assert np.abs(model.layers[2].moving_mean).max() > 0  # Keras' training moved them; we read them


def test_parameter_counts_match_keras(peer):
    *_, info = peer
    model = Sequential([Input((28, 28)), Flatten(), Dense(300, "relu"), BatchNormalization(), Dropout(0.2),
                        Dense(100, "relu"), BatchNormalization(), Dropout(0.2), Dense(10, "softmax")],
                       backend="numpy").build(seed=0)
    assert model.count_params() == info["total"]
    assert int(model.params.size) == info["trainable"]


@pytest.mark.parametrize("invert", [False, True])
def test_onnx_export_of_the_toolbox_layers_matches_predict(invert, tmp_path):
    """BatchNormalization folded to Mul/Add, Normalization to Sub/Div (Mul/Add inverted), Dropout the
    identity: ONNX Runtime gives our inference outputs."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(64, 8)) * 3 + 1).astype(np.float32)
    y = rng.integers(0, 3, 64).astype(np.int32)
    norm = Normalization(invert=invert)
    norm.adapt(x)
    model = small(norm)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=0)  # moving statistics off their start
    model.export(tmp_path / "m.onnx", verbose=False)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], model.predict(x), rtol=1e-4, atol=1e-5)
