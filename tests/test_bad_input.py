"""A catalogue of bad inputs: each gets a clear exception naming the argument, what was expected
and what was found, raised before any training step or file write."""
import gzip
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Adam, Dense, Flatten, Input, Sequential
from mlp_gpu.backend import BackendUnavailable, get_backend
from mlp_gpu.backend.base import device_memory_message
from mlp_gpu.callbacks.monitor import EarlyStopping
from mlp_gpu.callbacks.checkpoint import ModelCheckpoint
from mlp_gpu.data.idx import IDXError, read_idx
from mlp_gpu.io import ModelFileError, SaveError, files

from .conftest import CUPY_REASON

ROWS = 12


def model(loss="sparse_categorical_crossentropy", out="softmax", units=3):
    m = Sequential([Input((4, 4)), Flatten(), Dense(5, "relu"), Dense(units, out)], backend="numpy")
    m.compile(loss=loss, optimizer=SGD(0.1), metrics=["accuracy"], seed=0)
    return m


def good_x():
    return np.random.default_rng(0).random((ROWS, 4, 4)).astype(np.float32)


def good_y():
    return np.arange(ROWS) % 3


def with_value(array, index, value):
    array = np.array(array, dtype=np.float32)
    array[index] = value
    return array


# (id, call on a fresh compiled model, exception, message pattern)
FIT_CASES = [
    ("x-rank-1", lambda m: m.fit(np.zeros(ROWS), good_y()), ValueError, r"x: expected samples of shape \(4, 4\)"),
    ("x-wrong-shape", lambda m: m.fit(np.zeros((ROWS, 5, 5)), good_y()), ValueError, r"got array shape \(12, 5, 5\)"),
    ("x-strings", lambda m: m.fit(np.full((ROWS, 4, 4), "a"), good_y()), ValueError, "x: expected a numeric array"),
    ("x-objects", lambda m: m.fit(np.full((ROWS, 4, 4), None), good_y()), ValueError, "got dtype object"),
    ("x-nan", lambda m: m.fit(with_value(good_x(), (3, 1, 1), np.nan), good_y()), ValueError,
     r"x: contains NaN or infinity \(first in row 3\)"),
    ("x-inf", lambda m: m.fit(with_value(good_x(), (0, 0, 0), np.inf), good_y()), ValueError, "NaN or infinity"),
    ("x-not-array", lambda m: m.fit("pixels", good_y()), ValueError, "x: expected a non-empty array"),
    ("x-empty", lambda m: m.fit(np.zeros((0, 4, 4)), np.zeros(0)), ValueError, r"got shape \(0, 4, 4\)"),
    ("y-out-of-range", lambda m: m.fit(good_x(), good_y() + 1), ValueError,
     r"y: class labels must lie in \[0, 2\] for 3 output units, found values from 1 to 3"),
    ("y-negative", lambda m: m.fit(good_x(), good_y() - 1), ValueError, "found values from -1"),
    ("y-non-integer", lambda m: m.fit(good_x(), good_y() + 0.5), ValueError, "expects integer class labels"),
    ("y-wrong-length", lambda m: m.fit(good_x(), good_y()[:-1]), ValueError,
     r"y: expected 12 targets \(one per row of x\), got shape \(11,\)"),
    ("y-one-hot-with-sparse-loss", lambda m: m.fit(good_x(), np.eye(3)[good_y()]), ValueError,
     "one-hot targets need loss='categorical_crossentropy'"),
    ("y-strings", lambda m: m.fit(good_x(), np.array(["a"] * ROWS)), ValueError, "integer class labels, got dtype"),
    ("y-none", lambda m: m.fit(good_x(), None), ValueError, r"y: expected 12 targets"),
    ("batch-size-zero", lambda m: m.fit(good_x(), good_y(), batch_size=0), ValueError,
     "batch_size: expected an int >= 1, got 0"),
    ("batch-size-negative", lambda m: m.fit(good_x(), good_y(), batch_size=-3), ValueError, "got -3"),
    ("batch-size-float", lambda m: m.fit(good_x(), good_y(), batch_size=2.5), ValueError, "got 2.5"),
    ("epochs-negative", lambda m: m.fit(good_x(), good_y(), epochs=-1), ValueError, "epochs: expected an int >= 0"),
    ("validation-split-one", lambda m: m.fit(good_x(), good_y(), validation_split=1.0), ValueError,
     r"validation_split: expected a number in \[0, 1\), got 1.0"),
    ("validation-split-negative", lambda m: m.fit(good_x(), good_y(), validation_split=-0.1), ValueError,
     "validation_split"),
    ("validation-split-no-rows", lambda m: m.fit(good_x()[:1], good_y()[:1], validation_split=0.5), ValueError,
     "leaves 1 training and 0 validation rows"),
    ("validation-data-shape", lambda m: m.fit(good_x(), good_y(), validation_data=good_x()), ValueError,
     r"validation_data: expected a tuple \(x_val, y_val\)"),
    ("validation-data-bad-x", lambda m: m.fit(good_x(), good_y(), validation_data=(np.zeros((3, 2)), [0, 1, 2])),
     ValueError, "validation_data\\[0\\]: expected samples"),
    ("verbose-bad", lambda m: m.fit(good_x(), good_y(), verbose=5), ValueError, "verbose: expected 0, 1, 2"),
    ("callbacks-not-callbacks", lambda m: m.fit(good_x(), good_y(), callbacks=[print]), TypeError,
     "callbacks: expected mlp_gpu Callback objects"),
    ("predict-wrong-shape", lambda m: m.predict(np.zeros((3, 3, 3))), ValueError, "x: expected samples of shape"),
    ("evaluate-wrong-labels", lambda m: m.evaluate(good_x(), good_y() * 9), ValueError, "class labels must lie"),
    ("set-weights-wrong-shape", lambda m: m.set_weights([np.zeros((2, 2))] * 4), ValueError,
     r"weights\[0\]: expected shape \(16, 5\), got \(2, 2\)"),
    ("set-weights-nan", lambda m: m.set_weights([w * np.nan for w in m.get_weights()]), ValueError,
     "contains NaN"),
    ("checkpoint-field-never-logged", lambda m: m.fit(good_x(), good_y(), callbacks=[
        ModelCheckpoint("never-{epoch}-{val_loss:.2f}.h5")]), ValueError,
     r"field \{val_loss\} is never logged by this fit; it logs epoch and loss, accuracy"),
    ("checkpoint-monitor-never-logged", lambda m: m.fit(good_x(), good_y(), callbacks=[
        ModelCheckpoint("never.h5", save_best_only=True)]), ValueError,
     r"ModelCheckpoint\(monitor='val_loss'\): this fit logs only \['loss', 'accuracy'\]; pass validation_data"),
    ("early-stopping-monitor-never-logged", lambda m: m.fit(good_x(), good_y(), callbacks=[
        EarlyStopping(monitor="val_accuracy")]), ValueError, r"EarlyStopping\(monitor='val_accuracy'\): this fit"),
    ("set-weights-complex", lambda m: m.set_weights([w + 1j for w in m.get_weights()]), ValueError,
     r"weights\[0\]: expected an array of real numbers, got dtype complex"),
    ("set-weights-strings", lambda m: m.set_weights([w.astype(str) for w in m.get_weights()]), ValueError,
     r"weights\[0\]: expected an array of real numbers, got dtype <U"),
]


@pytest.mark.parametrize("call,exc,pattern", [c[1:] for c in FIT_CASES], ids=[c[0] for c in FIT_CASES])
def test_bad_training_input(call, exc, pattern):
    m = model()
    before = m.get_weights()
    with pytest.raises(exc, match=pattern):
        call(m)
    assert m.optimizer.iterations == 0  # raised before any step
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)


BUILD_CASES = [
    ("unknown-activation", lambda: Dense(3, "relu7"), "activation: expected one of"),  # relu6 is in the table
    ("units-zero", lambda: Dense(0), r"Dense\(units\): expected an int >= 1, got 0"),
    ("units-float", lambda: Dense(2.5), "got 2.5"),
    ("input-negative-shape", lambda: Input((-1,)), r"Input\(shape\): expected a tuple of positive ints"),
    ("unknown-initializer", lambda: Dense(3, kernel_initializer="nonexistent"), "kernel_initializer: expected one of"),
    ("unknown-loss", lambda: model(loss="focal"), "loss: expected one of"),
    ("unknown-optimizer", lambda: model().compile(loss="sparse_categorical_crossentropy",
                                                  optimizer="adafactor"), "optimizer: expected one of"),
    ("unknown-metric", lambda: model().compile(optimizer="sgd", loss="sparse_categorical_crossentropy",
                                               metrics=["iou"]), "metrics: expected names from"),
    ("lr-zero", lambda: SGD(0), r"SGD\(learning_rate\): expected a positive finite number, got 0"),
    ("lr-negative", lambda: Adam(-1e-3), "got -0.001"),
    ("lr-nan", lambda: SGD(float("nan")), "got nan"),
    ("momentum-too-big", lambda: SGD(momentum=1.5), r"SGD\(momentum\): expected a number in \[0, 1\]"),
    ("output-does-not-fit-loss", lambda: model(out="sigmoid"),
     "loss='sparse_categorical_crossentropy' needs a softmax output layer"),
    ("bce-needs-sigmoid", lambda: model(loss="binary_crossentropy", units=1, out="softmax"),
     "needs a sigmoid output layer"),
    ("backend-name", lambda: get_backend("tpu"), "backend: expected one of auto, numpy, cupy, got 'tpu'"),
    ("dtype", lambda: Sequential([Dense(2)], dtype="float16"), "dtype: expected 'float32' or 'float64'"),
    ("checkpoint-bad-template", lambda: ModelCheckpoint("c-{epoch.h5"), "not a valid template"),
    ("checkpoint-positional-field", lambda: ModelCheckpoint("c-{}.h5"), "fields need names"),
    ("no-input-shape", lambda: Sequential([Dense(2)], backend="numpy").build(), "the input shape is unknown"),
]


@pytest.mark.parametrize("call,pattern", [c[1:] for c in BUILD_CASES], ids=[c[0] for c in BUILD_CASES])
def test_bad_model_definition(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_evaluate_before_compile():
    m = Sequential([Input((2,)), Dense(2, "softmax")], backend="numpy").build()
    with pytest.raises(RuntimeError, match="evaluate: the model is not compiled"):
        m.evaluate(np.zeros((2, 2)), [0, 1])


@pytest.mark.skipif(CUPY_REASON is None, reason="a GPU is present")
def test_cupy_backend_without_gpu():
    with pytest.raises(BackendUnavailable, match="backend='cupy' cannot run here: .*Use backend='numpy'"):
        Sequential([Input((2,)), Dense(2, "softmax")], backend="cupy").build()


def test_device_memory_message_gives_sizes():
    msg = device_memory_message((1 << 20, 784), np.float32, free=512 << 20, total=80 << 30)
    assert "shape (1048576, 784) float32 needs 3,136.0 MiB" in msg
    assert "512.0 MiB free of 81,920.0 MiB" in msg and "smaller batch_size" in msg


# ---- files ---------------------------------------------------------------------------

def idx_bytes(array):
    import io
    import struct

    buf = io.BytesIO()
    buf.write(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape))
    buf.write(array.astype(np.uint8).tobytes())
    return buf.getvalue()


IDX_CASES = [
    ("truncated", lambda: idx_bytes(np.zeros((5, 3)))[:-4], "header says shape"),
    ("bad-magic", lambda: b"\x08\x03" + idx_bytes(np.zeros(3))[2:], "bad magic number"),
    ("header-larger-than-file", lambda: b"\x00\x00\x08\x02" + b"\x00\x01\x00\x00" * 2, "header says shape"),
    ("empty-file", lambda: b"", "truncated"),
    ("corrupt-gzip", lambda: gzip.compress(idx_bytes(np.random.default_rng(0).integers(0, 255, (50, 50))))[:400]
     + b"\xff" * 30, "corrupt compressed data|truncated"),
    ("more-dims-than-numpy", lambda: b"\x00\x00\x08\x41" + b"\x00\x00\x00\x01" * 65 + b"\x07",
     "65 dimensions; NumPy arrays have at most"),
]


@pytest.mark.parametrize("make,pattern", [c[1:] for c in IDX_CASES], ids=[c[0] for c in IDX_CASES])
def test_bad_idx_files(tmp_path, make, pattern):
    path = tmp_path / "bad-idx"
    path.write_bytes(make())
    with pytest.raises(IDXError, match=pattern):
        read_idx(path)


@pytest.fixture
def saved(tmp_path):
    m = model()
    m.save(tmp_path / "m.h5")
    return tmp_path / "m.h5"


def mutate(path, change, reseal=True):
    """Edit a saved model; by default re-seal it, as a well-formed but wrong file would be."""
    with h5py.File(path, "r+") as f:
        change(f)
    if reseal:
        path.write_bytes(files.seal(path.read_bytes()))
    return path


H5_CASES = [
    ("missing-dataset", lambda f: f.__delitem__("weights/dense/bias"), ModelFileError,
     "'/weights/dense/bias': missing; expected a dataset"),
    ("wrong-shape", lambda f: (f.__delitem__("weights/dense/kernel"),
                               f.create_dataset("weights/dense/kernel", data=np.zeros((3, 3), np.float32))),
     ModelFileError, r"is float32\(3, 3\), expected float32\(16, 5\)"),
    ("wrong-dtype", lambda f: (f.__delitem__("weights/dense_1/bias"),
                               f.create_dataset("weights/dense_1/bias", data=np.zeros(3))),
     ModelFileError, r"is float64\(3,\), expected float32\(3,\)"),
    ("bad-config-json", lambda f: f.attrs.__setitem__("model_config", "{not json"), ModelFileError,
     "model_config attribute: is not valid JSON"),
    ("unknown-layer-class", lambda f: f.attrs.__setitem__("model_config", json.dumps(
        {"layers": [{"class_name": "Conv2D", "config": {"filters": 3}}]})), ModelFileError,
     "expected one of \\[.*'Dense'.*\\], got 'Conv2D'"),
    # a Lambda's function is a name, looked up only in custom_objects: a file never names code to run
    ("lambda-names-a-function", lambda f: f.attrs.__setitem__("model_config", json.dumps(
        {"layers": [{"class_name": "Lambda", "config": {"function": "os.system"}}]})), ModelFileError,
     "function 'os.system', whose code a model file never stores; pass load_model\\(path, custom_objects="),
    ("unknown-config-key", lambda f: f.attrs.__setitem__("model_config", json.dumps(
        {"layers": [{"class_name": "Dense", "config": {"units": 2, "code": "x"}}]})), ModelFileError,
     r"unknown keys \['code'\]"),
    ("optimizer-state-shape", lambda f: (f.__delitem__("optimizer/state"),
                                         f.create_dataset("optimizer/state", data=np.zeros((1, 3), np.float32))),
     ModelFileError, r"optimizer/state': is float32\(1, 3\), expected shape \(0, 103\)"),
    ("other-version", lambda f: f.attrs.__setitem__("format_version", 99), ModelFileError, "format_version 99"),
]


@pytest.mark.parametrize("change,exc,pattern", [c[1:] for c in H5_CASES], ids=[c[0] for c in H5_CASES])
def test_bad_model_files(saved, change, exc, pattern):
    with pytest.raises(exc, match=pattern):
        mlp_gpu.load_model(mutate(saved, change))


def test_edited_file_without_a_new_seal_is_damaged(saved):
    mutate(saved, lambda f: f.attrs.__setitem__("format_version", 1), reseal=False)
    with pytest.raises(ModelFileError, match="SHA-256 does not match its contents"):
        mlp_gpu.load_model(saved)


def test_truncated_file_is_damaged(saved):
    saved.write_bytes(saved.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="damaged"):
        mlp_gpu.load_model(saved)


def test_other_programs_and_non_files(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.arange(3)
    with pytest.raises(ModelFileError, match="not an mlp_gpu file"):
        mlp_gpu.load_model(tmp_path / "other.h5")
    (tmp_path / "text.h5").write_text("hello")
    with pytest.raises(ModelFileError, match="is not an HDF5 file"):
        mlp_gpu.load_model(tmp_path / "text.h5")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        mlp_gpu.load_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model().load_weights(tmp_path / "missing.h5")


@pytest.mark.parametrize("target,exc,pattern", [
    ("missing/m.h5", FileNotFoundError, "folder .* does not exist"),
    (".", IsADirectoryError, "is a directory; expected a file name"),
    ("/sys/m.h5", SaveError, "cannot write in folder '/sys'"),
])
def test_unwritable_save_targets(tmp_path, target, exc, pattern):
    path = tmp_path / target if not target.startswith("/") else Path(target)
    with pytest.raises(exc, match=pattern):
        model().save(path)
    assert not list(tmp_path.rglob("*.tmp"))


def test_catalogue_has_at_least_30_cases():
    total = len(FIT_CASES) + len(BUILD_CASES) + len(IDX_CASES) + len(H5_CASES) + 3 + 4 + 3 + 2
    assert total >= 30


def test_keras_fit_arguments_we_do_not_have_are_refused_by_name():
    model = Sequential([Input((4,)), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x, y = np.zeros((8, 4), np.float32), np.zeros(8, np.int64)
    for kwargs, name in [(dict(class_weight={0: 1.0}), "class_weight"),
                         (dict(sample_weight=np.ones(8)), "sample_weight"),
                         (dict(steps_per_epoch=2), "steps_per_epoch"),
                         (dict(validation_freq=2), "validation_freq"),
                         (dict(validation_batch_size=4), "validation_batch_size")]:
        with pytest.raises(TypeError, match=rf"fit\({name}\)"):  # as an unknown keyword (scikit-learn's rule)
            model.fit(x, y, verbose=0, **kwargs)
    with pytest.raises(TypeError, match=r"fit\(shuffle\)"):
        model.fit(x, y, shuffle="yes", verbose=0)
    # Keras' positional order: shuffle, class_weight, sample_weight, initial_epoch
    history = model.fit(x, y, 4, 2, 0, None, 0.0, None, False, None, None, 1)
    assert history.epoch == [1]
    with pytest.raises(ValueError, match=r"Dense\(name\): expected a non-empty string"):
        Dense(3, name=3)
    with pytest.raises(ValueError, match=r"Dense\(name\)"):
        Dense(3, name="a/b")


def test_an_empty_backend_variable_means_auto(monkeypatch):
    monkeypatch.setenv("MLP_GPU_BACKEND", "")
    assert get_backend().name in ("numpy", "cupy")
    monkeypatch.setenv("MLP_GPU_BACKEND", "gpu")
    with pytest.raises(ValueError, match=r"MLP_GPU_BACKEND.*got 'gpu'"):
        get_backend()
