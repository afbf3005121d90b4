"""Functional models against Keras 3 (torch backend) on the same initial weights: Géron's Wide & Deep,
two inputs, two outputs with loss_weights, and a residual MLP with every merge layer."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mlp_gpu

from . import cases

HERE = Path(__file__).parent
EPOCHS = 4


def make_data(case, rows=40, seed=0):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(rows, w)).astype(np.float32) for w in cases.INPUTS[case]]
    ys = [rng.integers(0, 3, rows).astype(np.int32) if kind == "labels3" else
          rng.normal(size=(rows, 1)).astype(np.float32) for kind in cases.TARGETS[case]]
    return xs, ys


def ours(case, backend="numpy"):
    model = getattr(cases, case)(mlp_gpu)
    model._backend_request = backend
    model.compile(optimizer=mlp_gpu.SGD(0.05), seed=1, **cases.COMPILE[case])
    return model


def _pack(items):
    return tuple(items) if len(items) > 1 else items[0]


def run_keras(case, model, xs, ys, tmp_path, *files):
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras with the torch backend is not installed")
    arrays = {f"x{i}": x for i, x in enumerate(xs)} | {f"y{i}": y for i, y in enumerate(ys)}
    for layer in model.layers:
        for k, w in enumerate(layer.get_weights()):
            arrays[f"w/{layer.name}/{k}"] = w
    np.savez(tmp_path / "data.npz", **arrays)
    env = dict(os.environ, KERAS_BACKEND="torch", OMP_NUM_THREADS="1")
    subprocess.run([sys.executable, str(HERE / "keras_side.py"), case, str(tmp_path / "data.npz"),
                    str(tmp_path / "out.json"), str(EPOCHS), *map(str, files)], check=True, env=env, timeout=600,
                   capture_output=True)
    return json.loads((tmp_path / "out.json").read_text())


@pytest.mark.parametrize("case", ["wide_deep", "two_inputs", "two_outputs", "residual"])
def test_same_losses_metrics_and_weights_as_keras(case, tmp_path):
    xs, ys = make_data(case)
    model = ours(case)
    theirs = run_keras(case, model, xs, ys, tmp_path)
    history = model.fit(_pack(xs), _pack(ys), batch_size=len(xs[0]), epochs=EPOCHS, shuffle=False, verbose=0)
    assert [layer.name for layer in model.layers] == theirs["layers"]  # Keras' order: weight files follow it
    assert sorted(history.history) == sorted(theirs["history"])  # Keras' keys: loss, output_loss, output_mae ...
    for key, values in theirs["history"].items():
        np.testing.assert_allclose(history.history[key], values, rtol=2e-5, atol=1e-6, err_msg=key)
    evaluated = model.evaluate(_pack(xs), _pack(ys), return_dict=True)
    assert sorted(evaluated) == sorted(theirs["evaluate"])
    for key, value in theirs["evaluate"].items():
        np.testing.assert_allclose(evaluated[key], value, rtol=2e-5, atol=1e-6, err_msg=key)
    pred = model.predict(_pack(xs))
    pred = pred if isinstance(pred, list) else [pred]
    assert len(pred) == len(theirs["predict"])
    for p, q in zip(pred, theirs["predict"]):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)
    for layer in model.layers:
        for w, v in zip(layer.get_weights(), theirs["weights"][layer.name]):
            np.testing.assert_allclose(w, v, rtol=1e-4, atol=1e-6, err_msg=layer.name)


def _predictions(model, xs):
    pred = model.predict(_pack(xs))
    return pred if isinstance(pred, list) else [pred]


@pytest.mark.parametrize("case", ["two_outputs", "residual"])
def test_keras_loads_our_functional_file(case, tmp_path):
    xs, ys = make_data(case)
    model = ours(case)
    model.fit(_pack(xs), _pack(ys), epochs=1, verbose=0)
    model.save(tmp_path / "ours.keras")
    theirs = run_keras(case, model, xs, ys, tmp_path, "load", tmp_path / "ours.keras")
    assert theirs["class"] == "Functional" and theirs["layers"] == [layer.name for layer in model.layers]
    for p, q in zip(_predictions(model, xs), theirs["predict"], strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["two_outputs", "residual"])
def test_we_load_keras_functional_file(case, tmp_path):
    xs, ys = make_data(case)
    theirs = run_keras(case, ours(case), xs, ys, tmp_path, "save", tmp_path / "theirs.keras")
    model = mlp_gpu.models.load_model(tmp_path / "theirs.keras", backend="numpy")
    assert type(model).__name__ == "Model" and [layer.name for layer in model.layers] == theirs["layers"]
    for p, q in zip(_predictions(model, xs), theirs["predict"], strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    compiled = cases.COMPILE[case]
    if "loss_weights" in compiled:
        assert model._loss_weights == list(compiled["loss_weights"])
    model.fit(_pack(xs), _pack(ys), epochs=1, verbose=0)  # compiled from the file's compile_config
