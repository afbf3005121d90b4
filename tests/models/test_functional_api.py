"""The functional API's structure and its errors: names, chains as Sequentials, summary, refusals."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import layers as L

from . import cases


def test_chain_runs_as_a_sequential_with_the_folded_step():
    x = mlp_gpu.Input((6,))
    out = L.Dense(3, "softmax")(L.Dense(4, "relu")(x))
    model = mlp_gpu.models.Model(x, out, backend="numpy")
    assert not model._general and [layer.name for layer in model.layers] == ["dense", "dense_1"]
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(40, 6)), rng.integers(0, 3, 40), epochs=1, verbose=0)
    assert model.backend.route["route"] == "fused-sgd"


def test_graph_falls_back_to_the_general_step_and_says_why():
    model = cases.residual(mlp_gpu)
    model._backend_request = "numpy"
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    rng = np.random.default_rng(0)
    model.fit(rng.normal(size=(40, 8)), rng.integers(0, 3, 40), epochs=1, verbose=0)
    assert model.backend.route["route"] != "fused-sgd" and "graph" in model.backend.route["reason"]


def test_summary_has_keras_connected_to_column():
    model = cases.two_outputs(mlp_gpu)
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Connected to" in text
    concat = next(line for line in lines if line.startswith("concat (Concatenate)"))
    assert "(None, 35)" in concat and "wide[0][0], hidden2[0][0]" in concat
    assert next(line for line in lines if line.startswith("wide (Input)")).endswith("-")


def test_multi_input_data_errors_name_the_argument():
    model = cases.two_outputs(mlp_gpu)
    model.compile(loss="mse", optimizer="sgd", seed=0)
    xw, xd, y = np.zeros((4, 5)), np.zeros((4, 6)), np.zeros((4, 1))
    with pytest.raises(TypeError, match=r"x: the model has 2 inputs \['wide', 'deep'\]"):
        model.fit(xw, (y, y), verbose=0)
    with pytest.raises(ValueError, match=r"x\['deep'\]: expected samples of shape \(6,\)"):
        model.fit((xw, xw), (y, y), verbose=0)
    with pytest.raises(ValueError, match=r"missing \['deep'\]"):
        model.fit({"wide": xw}, (y, y), verbose=0)
    with pytest.raises(ValueError, match=r"x\['deep'\]: has 3 rows"):
        model.fit((xw, xd[:3]), (y, y), verbose=0)
    with pytest.raises(ValueError, match=r"y\['aux_output'\]"):
        model.fit((xw, xd), (y, np.zeros((4, 2))), verbose=0)
    with pytest.raises(ValueError, match="uint8"):
        model.predict((xw.astype(np.uint8), xd))
    history = model.fit({"deep": xd, "wide": xw}, {"output": y, "aux_output": y}, verbose=0)  # by name
    assert "aux_output_loss" in history.history


def test_compile_errors_name_the_argument():
    model = cases.two_outputs(mlp_gpu)
    with pytest.raises(ValueError, match=r"loss: expected one entry per output \(2"):
        model.compile(loss=["mse"] * 3, optimizer="sgd")
    with pytest.raises(ValueError, match=r"loss_weights\['aux_output'\]: expected a finite number"):
        model.compile(loss="mse", loss_weights={"output": 1.0, "aux_output": -1}, optimizer="sgd")
    with pytest.raises(ValueError, match="keys \\['nope'\\] are not output names"):
        model.compile(loss={"nope": "mse"}, optimizer="sgd")
    with pytest.raises(ValueError, match="metrics: a model with 2 outputs"):
        model.compile(loss="mse", metrics=["mae", "mse", "mae"], optimizer="sgd")


def test_graph_errors():
    a, b = mlp_gpu.Input((3,), name="a"), mlp_gpu.Input((4,), name="b")
    h = L.Dense(2)(b)
    with pytest.raises(ValueError, match="depend on Input 'b', which is not in inputs"):
        mlp_gpu.Model(a, L.Concatenate()([a, h]))
    with pytest.raises(ValueError, match="same shape"):
        L.Add()([a, b])
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        L.Subtract()([a, a, a])
    with pytest.raises(ValueError, match="list of at least 1 input"):
        L.Add()(a)
    with pytest.raises(TypeError, match="expected symbolic tensors"):
        L.Dense(2)(np.zeros((2, 3)))
    dense = L.Dense(2)
    dense(a)
    with pytest.raises(ValueError, match="called again .* shared weights need the same shapes"):
        dense(b)
    with pytest.raises(ValueError, match="an Input cannot be an output"):
        mlp_gpu.Model(a, a)
    with pytest.raises(TypeError, match="start of a graph, not a layer to call"):
        a(b)


def test_a_graph_trains_streamed_as_resident():
    from mlp_gpu.data.sources import ChunkedSource

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(250, 8)).astype(np.float32), rng.integers(0, 3, 250)
    histories, weights = [], []
    for data in ((x, y), (ChunkedSource(x, y, chunk_rows=64, resident=False),)):
        model = cases.residual(mlp_gpu)
        model._backend_request = "numpy"
        model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
        histories.append(model.fit(*data, batch_size=16, epochs=2, shuffle=False, verbose=0).history)
        weights.append(model.get_weights())
    for key in histories[0]:
        np.testing.assert_allclose(histories[1][key], histories[0][key], rtol=1e-5)
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_streaming_sources_for_several_inputs_are_refused_by_name():
    from mlp_gpu.data.sources import ChunkedSource

    model = cases.two_inputs(mlp_gpu)
    model.compile(loss="mse", optimizer="sgd", seed=0)
    with pytest.raises(TypeError, match=r"x: the model has 2 inputs .*data sources stream one array"):
        model.fit(ChunkedSource(np.zeros((4, 11)), np.zeros((4, 1))), verbose=0)


def test_clone_model_of_a_graph_keeps_the_wiring():
    model = cases.two_outputs(mlp_gpu)
    model._backend_request = "numpy"
    model.build(seed=0)
    clone = mlp_gpu.models.clone_model(model)
    assert type(clone) is mlp_gpu.Model and [layer.name for layer in clone.layers] == [
        layer.name for layer in model.layers]
    clone.set_weights(model.get_weights())
    x = (np.ones((2, 5), np.float32), np.ones((2, 6), np.float32))
    for a, b in zip(clone.predict(x), model.predict(x)):
        np.testing.assert_array_equal(a, b)


def test_calling_and_adding_to_a_functional_model():
    model = cases.residual(mlp_gpu)
    model._backend_request = "numpy"
    model.build(seed=0)
    x = np.ones((2, 8), np.float32)
    np.testing.assert_array_equal(model(x), model.predict(x))
    with pytest.raises(NotImplementedError, match="nesting a model"):
        model(mlp_gpu.Input((8,)))
    with pytest.raises(TypeError, match="add\\(\\) is Sequential's"):
        model.add(L.Dense(2))
