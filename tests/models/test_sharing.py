"""A layer in several models (Géron ch. 11's model_B_on_A): one set of weights, as in Keras 3."""
import os

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Model, Sequential, optimizers
from mlp_gpu.models import clone_model

os.environ.setdefault("KERAS_BACKEND", "torch")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(48, 5)).astype(np.float32)
Y_A = (np.arange(48) % 3).astype(np.int64)
Y_B = (X[:, :1] > 0).astype(np.float32)


def _model_a():
    model = Sequential([Input((5,)), Dense(8, "relu"), Dense(6, "relu"), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer=optimizers.SGD(0.1), loss="sparse_categorical_crossentropy", seed=0)
    return model


def _b_on_a(model_a):
    model_b = Sequential(model_a.layers[:-1] + [Dense(1, "sigmoid")], backend="numpy")
    model_b.compile(optimizer=optimizers.SGD(0.1), loss="binary_crossentropy", seed=1)
    model_b.build((None, 5))  # no Input in B's layers: Keras' batch shape, as keras_b.build takes it
    return model_b


def _numpy_forward(weights, x):
    k1, b1, k2, b2, k3, b3 = weights
    h = np.maximum(x @ k1 + b1, 0)
    h = np.maximum(h @ k2 + b2, 0)
    z = h @ k3 + b3
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_training_b_changes_a_shared_layers_as_keras_does():
    keras = pytest.importorskip("keras")
    model_a = _model_a()
    model_a.fit(X, Y_A, epochs=1, batch_size=16, shuffle=False, verbose=0)
    keras_a = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu"),
                                keras.layers.Dense(6, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    keras_a.set_weights(model_a.get_weights())
    model_b = _b_on_a(model_a)
    keras_b = keras.Sequential(keras_a.layers[:-1] + [keras.layers.Dense(1, activation="sigmoid")])
    keras_b.build((None, 5))
    keras_b.layers[-1].set_weights(model_b.layers[-1].get_weights())
    keras_b.compile(optimizer=keras.optimizers.SGD(0.1), loss="binary_crossentropy")
    before = model_a.get_weights()
    model_b.fit(X, Y_B, epochs=2, batch_size=16, shuffle=False, verbose=0)
    keras_b.fit(X, Y_B, epochs=2, batch_size=16, shuffle=False, verbose=0)
    after = model_a.get_weights()
    assert not np.allclose(before[0], after[0])  # A's first layer moved with B's training
    np.testing.assert_array_equal(after[-2], before[-2])  # its own output layer did not
    for ours, theirs in zip(after, keras_a.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model_a.predict(X), _numpy_forward(after, X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model_a.predict(X), keras_a.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


def test_training_a_again_is_seen_by_b():
    model_a = _model_a()
    model_b = _b_on_a(model_a)
    model_b.fit(X, Y_B, epochs=1, verbose=0)
    model_a.fit(X, Y_A, epochs=1, verbose=0)  # from B's values of the shared layers, then on
    shared = model_a.layers[0].get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(shared, model_b.layers[0].get_weights()))
    assert all(np.array_equal(a, b) for a, b in zip(model_a.get_weights()[:4], model_b.get_weights()[:4]))
    np.testing.assert_array_equal(model_b.layers[0].kernel, model_a.layers[0].kernel)


def test_clone_and_set_weights_keeps_a_intact():
    model_a = _model_a()
    model_a.fit(X, Y_A, epochs=1, verbose=0)
    clone = clone_model(model_a)
    clone.set_weights(model_a.get_weights())
    model_b = _b_on_a(clone)
    before = model_a.get_weights()
    model_b.fit(X, Y_B, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model_a.get_weights()))
    assert not np.array_equal(before[0], clone.get_weights()[0])


def test_a_shared_layer_fed_another_width_is_refused_naming_it():
    model_a = _model_a()
    with pytest.raises(ValueError, match=r"layer 'dense' is shared with another model.*\(5, 8\)"):
        Sequential([Input((7,))] + model_a.layers[:1] + [Dense(1)], backend="numpy").build()


def test_functional_models_share_layers_too():
    inputs = Input((5,))
    hidden = Dense(8, "relu")
    model_a = Model(inputs, Dense(3, "softmax")(hidden(inputs)), backend="numpy")
    model_a.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    other = Input((5,))
    model_b = Model(other, Dense(1)(hidden(other)), backend="numpy")
    model_b.compile(optimizer="sgd", loss="mse", seed=1)
    np.testing.assert_array_equal(model_b.get_weights()[0], model_a.get_weights()[0])
    model_b.fit(X, Y_B, epochs=1, verbose=0)
    np.testing.assert_array_equal(model_a.get_weights()[0], model_b.get_weights()[0])


def test_a_seed_cannot_redraw_a_shared_layer():
    model_a = _model_a()
    model_b = _b_on_a(model_a)
    before = model_a.get_weights()
    with pytest.raises(ValueError, match=r"compile\(seed=3\): layers \['dense', 'dense_1'\] are shared"):
        model_b.compile(optimizer="sgd", loss="binary_crossentropy", seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(before, model_a.get_weights()))
