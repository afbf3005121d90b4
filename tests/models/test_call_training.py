"""model(x, training=True) as Keras 3's call: Dropout drops (MC dropout), BatchNormalization uses and moves
the batch statistics, no weight changes; training=False (or None) predicts."""
import os

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Model, Sequential
from mlp_gpu.layers import BatchNormalization, Concatenate, Dropout

os.environ.setdefault("KERAS_BACKEND", "torch")


def _identity_after_dropout(rate=0.5, width=400):
    model = Sequential([Input((width,)), Dropout(rate), Dense(width)], backend="numpy")
    model.build()
    model.set_weights([np.eye(width, dtype=np.float32), np.zeros(width, np.float32)])
    return model


def test_dropout_is_active_and_scaled_as_keras_and_differs_per_call():
    model = _identity_after_dropout()
    x = np.ones((3, 400), np.float32)
    first, second = model(x, training=True), model(x, training=True)
    assert set(np.unique(first)) <= {0.0, 2.0}  # kept units scaled by 1 / (1 - rate), as Keras
    assert 0.4 < (first == 0).mean() < 0.6
    assert not np.array_equal(first, second)  # a fresh mask per call: Monte Carlo dropout
    np.testing.assert_array_equal(model(x), x)
    np.testing.assert_array_equal(model(x, training=None), x)
    np.testing.assert_array_equal(model.get_weights()[0], np.eye(400, dtype=np.float32))


def test_mc_dropout_mean_approaches_the_inference_output():
    model = _identity_after_dropout(rate=0.2, width=50)
    x = np.random.default_rng(0).uniform(1, 2, (4, 50)).astype(np.float32)
    mean = np.mean([model(x, training=True) for _ in range(400)], axis=0)
    np.testing.assert_allclose(mean, x, rtol=0.1)


def test_batchnorm_in_a_training_call_matches_keras():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(1)
    x = rng.normal(2.0, 3.0, (16, 6)).astype(np.float32)
    model = Sequential([Input((6,)), BatchNormalization(momentum=0.9), Dense(3)], backend="numpy")
    model.build()
    twin = keras.Sequential([keras.Input((6,)), keras.layers.BatchNormalization(momentum=0.9), keras.layers.Dense(3)])
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(model(x, training=True), twin(x, training=True).detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    for ours, theirs in zip(model.get_weights(), twin.get_weights()):  # the moving statistics moved alike
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert not np.allclose(model.layers[0].get_weights()[2], 0)
    model.layers[0].trainable = False  # frozen: inference mode even in a training call, as Keras
    twin.layers[0].trainable = False
    before = model.get_weights()
    np.testing.assert_allclose(model(x, training=True), twin(x, training=True).detach().numpy(), rtol=1e-4,
                               atol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_functional_model_training_call_with_two_inputs():
    a, b = Input((3,)), Input((2,))
    out = Dense(2)(Dropout(0.5)(Concatenate()([a, b])))
    model = Model([a, b], out, backend="numpy")
    xa, xb = np.ones((5, 3), np.float32), np.ones((5, 2), np.float32)
    assert not np.array_equal(model([xa, xb], training=True), model([xa, xb], training=True))
    np.testing.assert_array_equal(model([xa, xb]), model.predict([xa, xb]))
