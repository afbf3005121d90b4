"""Frozen layers (layer.trainable = False, model.trainable = False), against Keras 3's behaviour."""
import os
import re

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Model, Sequential, optimizers
from mlp_gpu.layers import BatchNormalization

os.environ.setdefault("KERAS_BACKEND", "torch")

RNG = np.random.default_rng(0)
X = RNG.normal(size=(64, 6)).astype(np.float32)
Y = (np.arange(64) % 3).astype(np.int64)
OPTIMIZERS = {
    "sgd": lambda: optimizers.SGD(0.1),  # the CPU's fused route when nothing is frozen
    "momentum": lambda: optimizers.SGD(0.1, momentum=0.9),
    "adam-decay": lambda: optimizers.Adam(0.01, weight_decay=0.1),  # decay moves zero-gradient weights
    "rmsprop-clip": lambda: optimizers.RMSprop(0.01, global_clipnorm=0.5),
}


def _model(bn=False):
    layers = [Input((6,)), Dense(8, "relu")] + ([BatchNormalization()] if bn else []) + [Dense(3, "softmax")]
    return Sequential(layers, backend="numpy")


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_a_frozen_layer_keeps_its_weights_bit_for_bit_through_fit(name):
    model = _model()
    model.layers[0].trainable = False
    model.compile(optimizer=OPTIMIZERS[name](), loss="sparse_categorical_crossentropy", seed=1)
    frozen, other = model.layers[0].get_weights(), model.layers[1].get_weights()
    model.fit(X, Y, epochs=3, batch_size=16, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(frozen, model.layers[0].get_weights()))
    assert not np.array_equal(other[0], model.layers[1].get_weights()[0])
    assert "frozen layers" in model.backend.route["reason"]


def test_the_flag_takes_effect_at_the_next_compile_as_in_keras():
    model = _model()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=1)
    model.layers[0].trainable = False  # after compile: this fit still trains the layer
    before = model.layers[0].get_weights()[0]
    model.fit(X, Y, epochs=1, verbose=0)
    moved = model.layers[0].get_weights()[0]
    assert not np.array_equal(before, moved)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=1, verbose=0)
    assert np.array_equal(moved, model.layers[0].get_weights()[0])


def test_model_trainable_false_freezes_every_layer():
    model = _model(bn=True)
    model.trainable = False
    assert all(layer.trainable is False for layer in model.layers)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=1)
    before = model.get_weights()
    model.fit(X, Y, epochs=2, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 8
    with pytest.raises(ValueError, match="trainable: expected True or False"):
        model.trainable = "no"


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_a_model_made_with_trainable_false_trains_nothing_as_keras(kind):
    """Keras: the constructor's flag leaves the layers' own flags (and their Variables') as they are."""
    keras = pytest.importorskip("keras")
    if kind == "sequential":
        model = Sequential([Input((6,)), Dense(8, "relu"), Dense(3, "softmax")], False, backend="numpy")
        twin = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8), keras.layers.Dense(3)], False)
    else:
        inputs, k_inputs = Input((6,)), keras.Input((6,))
        model = Model(inputs, Dense(3, "softmax")(Dense(8, "relu")(inputs)), trainable=False, backend="numpy")
        twin = keras.Model(k_inputs, keras.layers.Dense(3)(keras.layers.Dense(8)(k_inputs)), trainable=False)
    assert model.trainable is twin.trainable is False
    assert [getattr(layer, "trainable", True) for layer in model.layers[-2:]] == [True, True]
    assert [layer.trainable for layer in twin.layers[-2:]] == [True, True]
    assert len(model.trainable_weights) == len(twin.trainable_weights) == 0
    assert len(model.non_trainable_weights) == len(twin.non_trainable_weights) == 4
    assert [w.trainable for w in model.weights] == [w.trainable for w in twin.weights]
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", seed=0)
    before = model.get_weights()
    model.fit(X, Y, epochs=1, verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def _keras_twin(model, keras, bn=False, frozen=(0,)):
    layers = [keras.layers.Dense(8, activation="relu")] + ([keras.layers.BatchNormalization()] if bn else []) \
        + [keras.layers.Dense(3, activation="softmax")]
    twin = keras.Sequential([keras.Input((6,))] + layers)
    twin.set_weights(model.get_weights())
    for k in frozen:
        twin.layers[k].trainable = False
    return twin


@pytest.mark.parametrize("bn", [False, True])
def test_frozen_layers_train_as_keras_trains_them(bn):
    """Same start, same batches: the trainable weights end as Keras' (global clipping over the trainable
    gradients only; a frozen BatchNormalization in inference mode, its moving statistics kept)."""
    keras = pytest.importorskip("keras")
    model = _model(bn)
    frozen = (0, 1) if bn else (0,)
    for k in frozen:
        model.layers[k].trainable = False
    model.compile(optimizer=optimizers.SGD(0.1, global_clipnorm=0.05), loss="sparse_categorical_crossentropy", seed=3)
    if bn:  # moving statistics away from (0, 1), so inference mode differs from batch statistics
        model.layers[1].set_weights([np.full(8, 1.5, np.float32), np.full(8, 0.1, np.float32),
                                     np.full(8, 0.2, np.float32), np.full(8, 2.0, np.float32)])
    twin = _keras_twin(model, keras, bn, frozen)
    twin.compile(optimizer=keras.optimizers.SGD(0.1, global_clipnorm=0.05), loss="sparse_categorical_crossentropy")
    model.fit(X, Y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    twin.fit(X, Y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    ours, theirs = model.get_weights(), twin.get_weights()
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours[-2], _model(bn).get_weights()[-2])  # the output layer did train


def test_weight_lists_summary_and_count_split_as_keras():
    keras = pytest.importorskip("keras")
    model = _model(bn=True)
    model.layers[0].trainable = False
    twin = _keras_twin(model, keras, bn=True)
    shapes = lambda ws: [tuple(w.shape) for w in ws]  # noqa: E731
    assert shapes(model.trainable_weights) == shapes(twin.trainable_weights)
    assert shapes(model.non_trainable_weights) == shapes(twin.non_trainable_weights)
    assert [w.trainable for w in model.weights] == [w.trainable for w in twin.weights]
    assert model.count_params() == twin.count_params()
    lines = []
    model.summary(print_fn=lines.append)
    keras_lines = []
    twin.summary(print_fn=lambda line, *a, **k: keras_lines.append(line))

    def counts(text):
        return {key: int(n.replace(",", "")) for key, n in
                re.findall(r"(Total|Trainable|Non-trainable) params: ([\d,]+)", "\n".join(text))}
    assert counts(lines) == counts(keras_lines) and counts(lines)["Non-trainable"] == 6 * 8 + 8 + 16


def test_frozen_batchnorm_backward_matches_finite_differences():
    rng = np.random.default_rng(4)
    model = Sequential([Input((5,)), Dense(4, "tanh"), BatchNormalization(), Dense(3, "softmax")], backend="numpy",
                       dtype="float64")
    model.layers[1].trainable = False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    model.layers[1].set_weights([rng.uniform(0.5, 2, 4), rng.normal(size=4), rng.normal(size=4),
                                 rng.uniform(0.5, 2, 4)])
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, 7).astype(np.int32)
    ws = model.workspace(7)

    def loss():
        acc = np.zeros(model.sums_size)
        model.forward(x, ws, logits=True, training=True)
        model.loss_and_count(ws, y, acc)
        return acc[0] / 7
    stats = [w.copy() for w in model.layers[1].get_weights()]
    loss()
    model.backward(x, ws)
    a, b = model._ranges[id(model.layers[0])]
    analytic, numeric = model.grads[a:b].copy(), np.empty(b - a)
    for i in range(a, b):
        keep = model.params[i]
        model.params[i] = keep + 1e-6
        up = loss()
        model.params[i] = keep - 1e-6
        numeric[i - a] = (up - loss()) / 2e-6
        model.params[i] = keep
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8)
    assert all(np.array_equal(s, w) for s, w in zip(stats, model.layers[1].get_weights()))  # inference mode
