"""Keras 3 ``.keras`` zip files: our writer and reader, proven against real Keras in both directions."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from mlp_gpu import SGD, Adam, Dense, Flatten, Input, Sequential, load_model
from mlp_gpu.io import ModelFileError

TOL = 1e-5
ROOT = Path(__file__).resolve().parents[2]


def data(rows=256, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 6, 5), dtype=np.float32)
    y = (x.reshape(rows, -1)[:, :10].argmax(axis=1)).astype(np.int32)
    return x, y


def ours(activations=("relu", "tanh", "sigmoid", "linear"), optimizer=None):
    model = Sequential([Input((6, 5)), Flatten()] + [Dense(12 - i, a) for i, a in enumerate(activations)]
                       + [Dense(10, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=optimizer or SGD(0.1, momentum=0.9), metrics=["accuracy"], seed=0)
    x, y = data()
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    return model


def test_layout_is_keras_zip(tmp_path):
    ours().save(tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        config = json.loads(zf.read("config.json"))
        assert "keras_version" in json.loads(zf.read("metadata.json"))
        weights = zf.read("model.weights.h5")
    assert config["class_name"] == "Sequential"
    classes = [layer["class_name"] for layer in config["config"]["layers"]]
    assert classes == ["InputLayer", "Flatten", "Dense", "Dense", "Dense", "Dense", "Dense"]
    assert config["config"]["layers"][0]["config"]["batch_shape"] == [None, 6, 5]
    assert config["compile_config"]["optimizer"]["class_name"] == "SGD"
    assert config["compile_config"]["optimizer"]["config"]["momentum"] == pytest.approx(0.9)
    import io

    with h5py.File(io.BytesIO(weights), "r") as f:
        assert f["layers/dense/vars/0"].shape == (30, 12) and f["layers/dense/vars/1"].shape == (12,)
        assert f["layers/flatten/vars"].attrs["name"] == "flatten" and len(f["layers/flatten/vars"]) == 0


@pytest.mark.parametrize("optimizer", [SGD(0.05, momentum=0.5, nesterov=True), Adam(0.002, beta_1=0.8)])
def test_round_trip_keeps_weights_and_compile_settings(tmp_path, optimizer):
    model = ours(optimizer=optimizer)
    model.save(tmp_path / "m.keras")
    back = load_model(tmp_path / "m.keras", backend="numpy")
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert back.optimizer.get_config() == model.optimizer.get_config()
    assert back.optimizer.iterations == model.optimizer.iterations
    np.testing.assert_array_equal(back.optimizer.state, model.optimizer.state)
    assert back.loss.name == model.loss.name and back.metrics == ["accuracy"]
    assert [type(layer).__name__ for layer in back.layers] == [type(layer).__name__ for layer in model.layers]


def test_a_failed_save_keeps_the_old_file_and_bad_files_are_clear_errors(tmp_path):
    path = tmp_path / "m.keras"
    ours().save(path)
    before = path.read_bytes()

    from mlp_gpu.layers.base import Layer

    class Custom(Layer):
        pass

    odd = Sequential([Input((3,)), Custom(), Dense(2)], backend="numpy").build(seed=0)
    with pytest.raises(ValueError, match=r"Custom\) has no Keras .keras form"):
        odd.save(path)
    assert path.read_bytes() == before
    (tmp_path / "junk.keras").write_bytes(b"not a zip at all")
    with pytest.raises(ModelFileError, match="not a valid .keras file"):
        load_model(tmp_path / "junk.keras")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as zf:
        zf.writestr("other.txt", "x")
    with pytest.raises(ModelFileError, match="without config.json"):
        load_model(tmp_path / "empty.keras")
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    config["config"]["layers"][2]["class_name"] = "Conv2D"
    with zipfile.ZipFile(tmp_path / "conv.keras", "w") as zf:
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", zipfile.ZipFile(path).read("model.weights.h5"))
    with pytest.raises(ModelFileError, match="'Conv2D' is not supported"):
        load_model(tmp_path / "conv.keras")


KERAS_SIDE = r"""
import json, sys
import numpy as np
import keras
folder = sys.argv[1]
x = np.load(f"{folder}/x.npy")
y = np.load(f"{folder}/y.npy")
theirs = keras.models.load_model(f"{folder}/ours.keras")   # mlp_gpu -> Keras
np.save(f"{folder}/keras_on_ours.npy", theirs.predict(x, verbose=0))
opt = theirs.optimizer
report = {"optimizer": type(opt).__name__, "lr": float(opt.learning_rate), "momentum": float(opt.momentum),
          "loss": theirs.loss, "layers": [type(l).__name__ for l in theirs.layers]}
report["iterations"] = int(opt.iterations)
theirs.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)  # training goes on in Keras
np.save(f"{folder}/keras_on_ours_trained.npy", theirs.predict(x, verbose=0))
model = keras.Sequential([keras.Input((6, 5)), keras.layers.Flatten(),
                          keras.layers.Dense(12, activation="relu"), keras.layers.Dense(11, activation="tanh"),
                          keras.layers.Dense(10, activation="sigmoid"), keras.layers.Dense(9),
                          keras.layers.Dense(10, activation="softmax")])
model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
model.save(f"{folder}/theirs.keras")                         # Keras -> mlp_gpu
np.save(f"{folder}/keras_own.npy", model.predict(x, verbose=0))
model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
np.save(f"{folder}/keras_own_trained.npy", model.predict(x, verbose=0))
print(json.dumps(report))
"""


def _importable(name):
    import importlib.util

    return importlib.util.find_spec(name) is not None


def _run_keras_side(tmp_path, source: str):
    """Run ``source`` as a script under Keras 3 (PyTorch backend) on tmp_path; it must succeed."""
    script = tmp_path / "keras_side.py"
    script.write_text(source)
    env = {**os.environ, "KERAS_BACKEND": "torch", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_keras_reads_ours_and_we_read_keras(tmp_path):
    if not (_importable("keras") and _importable("torch")):
        pytest.skip("Keras with its PyTorch backend is needed (make peers installs it)")
    x, y = data(rows=300, seed=1)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    model = ours()
    model.save(tmp_path / "ours.keras")
    proc = _run_keras_side(tmp_path, KERAS_SIDE)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["optimizer"] == "SGD" and report["lr"] == pytest.approx(0.1) and report["momentum"] == 0.9
    assert report["loss"] == "sparse_categorical_crossentropy"
    assert report["layers"] == ["Flatten", "Dense", "Dense", "Dense", "Dense", "Dense"]
    np.testing.assert_allclose(np.load(tmp_path / "keras_on_ours.npy"), model.predict(x), atol=TOL, rtol=0)
    assert report["iterations"] == model.optimizer.iterations
    # one more epoch, in order, on each side: equal only if the momentum state travelled too
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "keras_on_ours_trained.npy"), model.predict(x), atol=1e-4, rtol=0)

    theirs = load_model(tmp_path / "theirs.keras", backend="numpy")
    np.testing.assert_allclose(theirs.predict(x), np.load(tmp_path / "keras_own.npy"), atol=TOL, rtol=0)
    assert [d.activation for d in theirs.dense_layers] == ["relu", "tanh", "sigmoid", "linear", "softmax"]
    assert type(theirs.optimizer).__name__ == "Adam" and theirs.optimizer.learning_rate == pytest.approx(0.003)
    theirs.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)  # Adam's moments came along
    np.testing.assert_allclose(theirs.predict(x), np.load(tmp_path / "keras_own_trained.npy"), atol=1e-4, rtol=0)


def test_cli_export_to_keras(tiny_dataset, tmp_path):
    from mlp_gpu.cli import main

    h5, out = tmp_path / "m.h5", tmp_path / "m.keras"
    assert main(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "1", "--hidden", "8",
                 "--validation-size", "40", "--verbose", "0", "--output", str(h5)]) == 0
    assert main(["export", str(h5), str(out)]) == 0
    for a, b in zip(load_model(h5).get_weights(), load_model(out).get_weights()):
        np.testing.assert_array_equal(a, b)


def test_damaged_weights_fail_the_zip_crc_before_hdf5_reads_them(tmp_path):
    """Keras files carry no mlp_gpu seal, but each zip member has a CRC-32, checked on read."""
    path = tmp_path / "m.keras"
    ours().save(path)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("model.weights.h5")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # local header, then data
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="CRC"):
        load_model(path)


TOOLBOX_KERAS_SIDE = r"""
import sys
import numpy as np
import keras
folder = sys.argv[1]
x = np.load(f"{folder}/x.npy")
y = np.load(f"{folder}/y.npy")
np.save(f"{folder}/keras_on_ours.npy", keras.models.load_model(f"{folder}/ours.keras").predict(x, verbose=0))
norm = keras.layers.Normalization()
norm.adapt(x)
model = keras.Sequential([keras.Input((6,)), norm, keras.layers.Dense(8, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Dropout(0.25),
                          keras.layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
model.fit(x, y, epochs=2, batch_size=32, verbose=0)
model.save(f"{folder}/theirs.keras")
np.save(f"{folder}/keras_own.npy", model.predict(x, verbose=0))
"""


def test_normalization_batchnorm_dropout_both_ways(tmp_path):
    """The toolbox layers' configs and variables (moving and adapted statistics) travel in .keras files."""
    if not (_importable("keras") and _importable("torch")):
        pytest.skip("Keras with its PyTorch backend is needed (make peers installs it)")
    from mlp_gpu import BatchNormalization, Dropout, Normalization

    rng = np.random.default_rng(2)
    x = rng.normal(3, 2, (240, 6)).astype(np.float32)
    y = (x[:, 0] > 3).astype(np.int32) + (x[:, 1] > 3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    norm = Normalization()
    norm.adapt(x)
    model = Sequential([Input((6,)), norm, Dense(8, "relu"), BatchNormalization(momentum=0.9), Dropout(0.25),
                        Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", seed=0)
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    model.save(tmp_path / "ours.keras")
    back = load_model(tmp_path / "ours.keras", backend="numpy")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    _run_keras_side(tmp_path, TOOLBOX_KERAS_SIDE)
    np.testing.assert_allclose(np.load(tmp_path / "keras_on_ours.npy"), model.predict(x), atol=TOL, rtol=0)
    theirs = load_model(tmp_path / "theirs.keras", backend="numpy")
    assert [type(layer).__name__ for layer in theirs.layers] == ["Normalization", "Dense", "BatchNormalization",
                                                                 "Dropout", "Dense"]
    np.testing.assert_allclose(theirs.predict(x), np.load(tmp_path / "keras_own.npy"), atol=TOL, rtol=0)


def test_an_optimizer_without_a_keras_form_is_a_clear_error(tmp_path):
    model = Sequential([Input((3,)), Dense(2, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop", seed=0)
    with pytest.raises(ValueError, match="optimizer 'rmsprop' has no .keras form here"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def _keras_in_process():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _toolbox(names=True):
    from mlp_gpu import BatchNormalization, Dropout

    return Sequential([Input((6,)), Dense(8, "relu", name="hidden" if names else None),
                       BatchNormalization(momentum=0.9, name="bn" if names else None), Dropout(0.25),
                       Dense(3, "softmax", name="out" if names else None)], backend="numpy")


def _keras_toolbox(keras):
    L = keras.layers  # noqa: N806
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"), L.BatchNormalization(momentum=0.9),
                             L.Dropout(0.25), L.Dense(3, activation="softmax")])


def test_weights_h5_is_keras_own_layout_both_ways(tmp_path):
    """model.save_weights("m.weights.h5") writes what Keras' load_weights reads (groups named by class,
    whatever the layers are called), and Keras' own .weights.h5 loads here."""
    keras = _keras_in_process()
    rng = np.random.default_rng(5)
    x = rng.normal(1, 2, (90, 6)).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.int32) + (x[:, 1] > 1)
    ours = _toolbox()
    ours.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05, momentum=0.9), seed=0)
    ours.fit(x, y, epochs=2, verbose=0, seed=0)
    path = tmp_path / "ours.weights.h5"
    ours.save_weights(path)
    assert not path.read_bytes().startswith(b"mlp_gpu")  # plain HDF5 as Keras writes it, no seal
    with h5py.File(path, "r") as f:
        assert sorted(f["layers"]) == ["batch_normalization", "dense", "dense_1", "dropout"]
        assert f["layers/dense/vars"].attrs["name"] == "hidden" and f["vars"].attrs["name"] == ours.name
        assert len(f["layers/batch_normalization/vars"]) == 4 and "optimizer" in f
    theirs = _keras_toolbox(keras)
    theirs.load_weights(path)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)), ours.predict(x, verbose=0),
                               atol=TOL, rtol=0)

    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, y, epochs=1, verbose=0)
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    back = _toolbox(names=False)
    back.load_weights(tmp_path / "theirs.weights.h5")
    np.testing.assert_allclose(back.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               atol=TOL, rtol=0)


def test_weights_h5_round_trip_keeps_the_optimizer_state(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(1, 2, (64, 6)).astype(np.float32)
    y = (x[:, 0] > 1).astype(np.int32)
    model = _toolbox()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05, momentum=0.9), seed=0)
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    model.save_weights(tmp_path / "m.weights.h5")
    back = _toolbox()
    back.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05, momentum=0.9), seed=1)
    back.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.optimizer.state, model.optimizer.state)
    assert back.optimizer.iterations == model.optimizer.iterations
    model.save_weights(tmp_path / "m.h5")  # another name: mlp_gpu's own sealed file, as before
    assert (tmp_path / "m.h5").read_bytes().startswith(b"mlp_gpu")
    back.load_weights(tmp_path / "m.h5")
    with pytest.raises(ModelFileError):
        Sequential([Input((6,)), Dense(5), Dense(3, "softmax")], backend="numpy").load_weights(
            tmp_path / "m.weights.h5")


def test_a_graph_weights_h5_loads_in_keras_and_back(tmp_path):
    """A functional graph (two inputs, a Concatenate) writes Keras' functional layout of .weights.h5."""
    keras = _keras_in_process()
    from mlp_gpu import Model, layers

    def graph():
        a, b = Input((3,)), Input((2,))
        h = layers.Concatenate()([Dense(4, "relu")(a), b])
        return Model([a, b], Dense(2, "softmax")(Dense(5, "tanh")(h)), backend="numpy")

    def keras_graph():
        L = keras.layers  # noqa: N806
        a, b = keras.Input((3,)), keras.Input((2,))
        h = L.Concatenate()([L.Dense(4, activation="relu")(a), b])
        return keras.Model([a, b], L.Dense(2, activation="softmax")(L.Dense(5, activation="tanh")(h)))

    ours = graph()
    ours.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    rng = np.random.default_rng(8)
    xs = (rng.random((16, 3), dtype=np.float32), rng.random((16, 2), dtype=np.float32))
    ours.fit(xs, np.arange(16) % 2, epochs=1, verbose=0, seed=0)
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs = keras_graph()
    theirs.load_weights(tmp_path / "g.weights.h5")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs.predict(xs, verbose=0)), ours.predict(xs, verbose=0),
                               atol=TOL, rtol=0)
    theirs.save_weights(tmp_path / "k.weights.h5")
    back = graph()
    back.load_weights(tmp_path / "k.weights.h5")
    for a, b in zip(back.get_weights(), ours.get_weights()):
        np.testing.assert_array_equal(a, b)
