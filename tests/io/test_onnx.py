"""ONNX export, run in ONNX Runtime against our own predictions."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest

from mlp_gpu import Dense, Flatten, Input, Sequential, activations
from mlp_gpu.cli import main
from mlp_gpu.io.onnx import EXPORTERS, OPSET
from mlp_gpu.layers.base import Layer

from ..conftest import blobs

TOL = 1e-5


def run_onnx(path, x):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


@pytest.mark.parametrize("activation", list(activations.ACTIVATIONS))  # every entry of the table
def test_each_activation_matches_ours(activation, tmp_path):
    x, y = blobs(n=200, features=6)
    model = Sequential([Input((6,)), Dense(9, activation), Dense(4, activation)], backend="numpy")
    model.compile(loss="mse", optimizer="adam", seed=1)
    model.fit(x, np.eye(4, dtype=np.float32)[y], epochs=2, verbose=0, seed=0)  # trained, not initial weights
    model.export(tmp_path / "m.onnx", verbose=False)
    proto = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == OPSET
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict(x), atol=TOL, rtol=0)


def test_flatten_and_the_batch_dimension_is_dynamic(tmp_path):
    model = Sequential([Input((4, 7)), Flatten(), Dense(12, "relu"), Dense(5, "softmax")], backend="numpy")
    model.build(seed=3)
    model.export(tmp_path / "m.onnx", verbose=False)
    rng = np.random.default_rng(0)
    for rows in (1, 37):
        x = rng.normal(size=(rows, 4, 7)).astype(np.float32)
        out = run_onnx(tmp_path / "m.onnx", x)
        assert out.shape == (rows, 5)
        np.testing.assert_allclose(out, model.predict(x), atol=TOL, rtol=0)


def test_first_dense_with_input_shape_needs_no_input_layer(tmp_path):
    model = Sequential([Dense(3, "tanh", input_shape=(5,)), Dense(2)], backend="numpy").build(seed=0)
    model.export(tmp_path / "m.onnx", verbose=False)
    x = np.random.default_rng(1).normal(size=(8, 5)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(tmp_path / "m.onnx", x), model.predict(x), atol=TOL, rtol=0)


def test_uint8_input_scales_pixels_in_the_graph(tmp_path):
    """Our predict takes uint8 pixels and scales them by 1/255; input_dtype='uint8' does the same in ONNX."""
    model = Sequential([Input((28, 28)), Flatten(), Dense(16, "relu"), Dense(10, "softmax")], backend="numpy")
    model.build(seed=0)
    pixels = np.random.default_rng(2).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    model.export(tmp_path / "u8.onnx", input_dtype="uint8", verbose=False)
    np.testing.assert_allclose(run_onnx(tmp_path / "u8.onnx", pixels), model.predict(pixels), atol=TOL, rtol=0)
    model.export(tmp_path / "f32.onnx", verbose=False)  # the default takes float32, scaled by the caller
    scaled = pixels.astype(np.float32) / np.float32(255)
    np.testing.assert_allclose(run_onnx(tmp_path / "f32.onnx", scaled), model.predict(pixels), atol=TOL, rtol=0)


def test_cli_export_of_a_trained_model(tiny_dataset, tmp_path, capsys):
    h5, out = tmp_path / "m.h5", tmp_path / "m.onnx"
    assert main(["train", "--data", str(tiny_dataset), "--backend", "numpy", "--epochs", "2", "--hidden", "16",
                 "--validation-size", "40", "--verbose", "0", "--output", str(h5)]) == 0
    assert main(["export", str(h5), str(out), "--input-dtype", "uint8", "--opset", "18"]) == 0
    assert "exported" in capsys.readouterr().out
    from mlp_gpu import load_model

    model = load_model(h5, backend="numpy")
    pixels = np.random.default_rng(3).integers(0, 256, (30, 28, 28), dtype=np.uint8)
    assert onnx.load(out).opset_import[0].version == 18
    np.testing.assert_allclose(run_onnx(out, pixels), model.predict(pixels), atol=TOL, rtol=0)


class Doubler(Layer):
    """A layer without an ONNX exporter."""


def test_bad_requests_are_clear_errors_and_write_nothing(tmp_path):
    with pytest.raises(RuntimeError, match="not built"):  # no input shape declared: nothing to export yet
        Sequential([Dense(2)], backend="numpy").export(tmp_path / "m.onnx")
    model = Sequential([Input((3,)), Dense(2)], backend="numpy")
    model.build(seed=0)
    with pytest.raises(ValueError, match="format: expected 'onnx'"):
        model.export(tmp_path / "m.onnx", format="tf_saved_model")
    with pytest.raises(ValueError, match="input_dtype"):
        model.export(tmp_path / "m.onnx", input_dtype="float16")
    with pytest.raises(ValueError, match="opset_version"):
        model.export(tmp_path / "m.onnx", opset_version=9)
    with pytest.raises(TypeError, match="unexpected arguments"):
        model.export(tmp_path / "m.onnx", dynamic_axes=True)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.export(tmp_path / "no" / "m.onnx")
    odd = Sequential([Input((3,)), Doubler(), Dense(2)], backend="numpy").build(seed=0)
    with pytest.raises(ValueError, match=r"Doubler\) has no ONNX exporter"):
        odd.export(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_every_layer_class_has_an_exporter():
    from mlp_gpu.layers.base import LAYER_CLASSES

    assert set(LAYER_CLASSES) <= set(EXPORTERS)
