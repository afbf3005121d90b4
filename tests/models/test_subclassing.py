"""Subclassed models (Géron's WideAndDeepModel): traced once on symbolic inputs, then the same graph
and the same training as the functional form; data-dependent control flow refused by line."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu.layers.node import SymbolicError

from . import cases


class WideAndDeepModel(mlp_gpu.Model):
    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.hidden1 = mlp_gpu.layers.Dense(units, activation=activation, name="hidden1")
        self.hidden2 = mlp_gpu.layers.Dense(units, activation=activation, name="hidden2")
        self.main_output = mlp_gpu.layers.Dense(1, name="output")
        self.aux_output = mlp_gpu.layers.Dense(1, name="aux_output")

    def call(self, inputs):
        input_wide, input_deep = inputs
        hidden1 = self.hidden1(input_deep)
        hidden2 = self.hidden2(hidden1)
        concat = mlp_gpu.layers.concatenate([input_wide, hidden2], name="concat")
        output = self.main_output(concat)
        aux_output = self.aux_output(hidden2)
        return output, aux_output


def data(rows=64, seed=3):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(rows, 5)).astype(np.float32), rng.normal(size=(rows, 6)).astype(np.float32),
            rng.normal(size=(rows, 1)).astype(np.float32))


def test_subclassed_equals_functional():
    x_wide, x_deep, y = data()
    functional = cases.two_outputs(mlp_gpu)
    functional.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer="sgd", seed=4)
    model = WideAndDeepModel(30, activation="relu", name="my_cool_model")
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer="sgd")
    with pytest.raises(RuntimeError, match="not built yet"):
        model.get_weights()
    model.build(((None, 5), (None, 6)))  # Keras' build with the inputs' shapes traces call once
    assert model.name == "my_cool_model" and model.output_names == ["output", "aux_output"]
    expected = [layer.name for layer in functional.layers if layer.name not in ("wide", "deep")]
    assert sorted(layer.name for layer in model.layers) == sorted(expected + ["input_layer", "input_layer_1"])
    for layer in functional.layers:
        if layer.get_weights():
            model.get_layer(layer.name).set_weights(layer.get_weights())
    ours = model.fit((x_wide, x_deep), (y, y), epochs=2, batch_size=16, seed=9, verbose=0)
    theirs = functional.fit((x_wide, x_deep), (y, y), epochs=2, batch_size=16, seed=9, verbose=0)
    assert ours.history == theirs.history
    for layer in functional.layers:
        for a, b in zip(model.get_layer(layer.name).get_weights() if layer.get_weights() else [],
                        layer.get_weights()):
            np.testing.assert_array_equal(a, b)
    main, aux = model.predict((x_wide, x_deep))
    assert main.shape == aux.shape == (64, 1)


def test_subclassed_traced_from_first_data_with_pending_compile():
    x_wide, x_deep, y = data()
    model = WideAndDeepModel(8)
    model.compile(loss="mse", optimizer="sgd")  # one loss for both outputs, as in Keras
    history = model.fit((x_wide, x_deep), (y, y), epochs=1, verbose=0)
    assert sorted(history.history) == ["aux_output_loss", "loss", "output_loss"]
    assert np.isclose(history.history["loss"][0],
                      history.history["output_loss"][0] + history.history["aux_output_loss"][0])


class Branchy(mlp_gpu.Model):
    def __init__(self):
        super().__init__()
        self.dense = mlp_gpu.layers.Dense(1)

    def call(self, inputs, training=None):
        if inputs > 0:  # depends on the data: cannot be traced
            return self.dense(inputs)
        return inputs


def test_data_dependent_control_flow_is_refused_with_its_line():
    with pytest.raises(SymbolicError, match=r"test_subclassing\.py:\d+: if inputs > 0:"):
        Branchy().build((None, 3))


def test_plain_model_needs_inputs_and_outputs():
    with pytest.raises(TypeError, match="expected inputs and outputs"):
        mlp_gpu.Model()
    with pytest.raises(TypeError, match="only inputs"):
        mlp_gpu.Model(inputs=mlp_gpu.Input((3,)))
