"""Dropout, BatchNormalization, Normalization and regularizers on the NumPy backend: formulas,
float64 finite-difference gradients, parameter counts, saving and loading."""
import numpy as np
import pytest

from mlp_gpu import (BatchNormalization, Dense, Dropout, Flatten, Input, Normalization, Sequential, load_model,
                     regularizers)
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.numpy.layer_ops import dropout_words, philox4x32
from ..conftest import central_differences



@pytest.mark.parametrize("ctr,key,want", [  # Random123's kat_vectors, philox4x32 10
    ((0, 0, 0, 0), (0, 0), (0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
    ((0xffffffff,) * 4, (0xffffffff,) * 2, (0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
    ((0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), (0xa4093822, 0x299f31d0),
     (0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1)),
])
def test_philox_known_answers(ctr, key, want):
    got = philox4x32([np.array([c], np.uint32) for c in ctr], key)
    assert tuple(int(g[0]) for g in got) == want


def test_dropout_masks_are_inverted_seeded_and_fresh_each_draw():
    be = NumpyBackend()
    x = np.ones((400, 250), np.float32)
    out, mask = np.empty_like(x), np.empty_like(x)
    counter = np.zeros(1, np.int64)
    be.dropout(x, out, mask, counter, 7, 0.2)
    kept = out != 0
    assert abs(kept.mean() - 0.8) < 0.005                       # 100,000 draws: 0.8 +- 5 sigma
    np.testing.assert_array_equal(out[kept], np.float32(1 / 0.8))  # inverted scaling
    again = np.empty_like(x)
    be.dropout(x, again, mask, counter, 7, 0.2)
    np.testing.assert_array_equal(again, out)                   # same seed and counter: same mask
    counter += 1
    be.dropout(x, again, mask, counter, 7, 0.2)
    assert (again != out).mean() > 0.2                          # the next draw is a fresh mask
    be.dropout(x, again, mask, counter * 0, 8, 0.2)
    assert (again != out).mean() > 0.2                          # another seed, another stream


def test_dropout_words_do_not_repeat_across_counter_blocks():
    a, b = dropout_words(1000, 0, 1), dropout_words(1000, 1, 1)
    assert len(np.unique(np.concatenate([a, b]))) > 1990


def test_dropout_layer_trains_only_and_model_draws_fresh_masks():
    model = Sequential([Input((20,)), Dropout(0.5, seed=3), Dense(2, "softmax")], backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    x = np.ones((8, 20), np.float32)
    ws = model.workspace(8)
    model.forward(x, ws)
    np.testing.assert_array_equal(ws.a[0], x)  # inference: the identity
    model.forward(x, ws, training=True)
    first = ws.a[0].copy()
    assert set(np.unique(first)) == {0.0, 2.0}
    model.forward(x, ws, training=True)
    assert (ws.a[0] != first).any() and int(model.rng_counter[0]) == 2


def test_batchnorm_matches_keras_formulas():
    rng = np.random.default_rng(0)
    bn = BatchNormalization()
    model = Sequential([Input((6,)), bn, Dense(2)], backend="numpy", dtype="float64").build(seed=0)
    bn.gamma[...] = rng.normal(size=6)
    bn.beta[...] = rng.normal(size=6)
    x = rng.normal(3.0, 2.0, size=(50, 6))
    ws = model.workspace(50)
    model.forward(x, ws, training=True)
    mean, var = x.mean(0), x.var(0)
    np.testing.assert_allclose(ws.a[0], bn.gamma * (x - mean) / np.sqrt(var + 1e-3) + bn.beta, rtol=1e-12)
    np.testing.assert_allclose(bn.moving_mean, 0.01 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.moving_variance, 0.99 + 0.01 * var, rtol=1e-12)
    model.forward(x, ws)  # inference: the moving statistics
    np.testing.assert_allclose(ws.a[0], bn.gamma * (x - bn.moving_mean) / np.sqrt(bn.moving_variance + 1e-3)
                               + bn.beta, rtol=1e-12)


def test_normalization_adapt_streams_in_float64():
    rng = np.random.default_rng(1)
    x = rng.normal(1e4, 3.0, size=(20_001, 5)).astype(np.float32)
    whole, batched = Normalization(), Normalization()
    whole.adapt(x, batch_size=999)
    batched.adapt([x[:7], x[7:5000], x[5000:]])
    want_mean, want_var = x.astype(np.float64).mean(0), x.astype(np.float64).var(0)
    for layer in (whole, batched):
        np.testing.assert_allclose(layer._adapted[0], want_mean, rtol=1e-13)
        np.testing.assert_allclose(layer._adapted[1], want_var, rtol=1e-9)
    model = Sequential([Input((5,)), whole, Dense(1)], backend="numpy").build(seed=0)
    ws = model.workspace(4)
    model.forward(x[:4], ws)
    np.testing.assert_allclose(ws.a[0], (x[:4] - want_mean) / np.sqrt(want_var), atol=1e-3)  # float32 near 1e4


def test_normalization_given_mean_variance_and_uint8_scaling():
    layer = Normalization(mean=[1.0, 2.0], variance=[4.0, 0.0])
    model = Sequential([Input((2,)), layer, Dense(1)], backend="numpy").build(seed=0)
    ws = model.workspace(1)
    model.forward(np.array([[3.0, 2.5]], np.float32), ws)
    np.testing.assert_allclose(ws.a[0], [[1.0, 0.5 / 1e-7]], rtol=1e-6)  # std floored at 1e-7
    assert model.get_weights()[:0] == [] and len(model.get_weights()) == 2  # no weights, as in Keras
    pixels = Normalization()
    pixels.adapt(np.array([[0], [255]], np.uint8))
    np.testing.assert_allclose(pixels._adapted[0], [0.5])  # the model sees uint8 as x / 255
    with pytest.raises(ValueError, match="both mean= and variance="):
        Normalization(mean=1.0)
    with pytest.raises(ValueError, match=r"shape \(rows, features\)"):
        Normalization().adapt(np.zeros((3, 2, 2)))


@pytest.mark.parametrize("reg,want", [("l1", (0.01, 0.0)), ("l2", (0.0, 0.01)), ("l1_l2", (0.01, 0.01)),
                                      (regularizers.L1L2(l2=0.5), (0.0, 0.5)), (regularizers.l1(0.2), (0.2, 0.0))])
def test_regularizer_identifiers(reg, want):
    r = regularizers.get(reg)
    assert (r.l1, r.l2) == pytest.approx(want)
    assert regularizers.get(regularizers.serialize(r)).get_config() == r.get_config()


def test_regularizer_penalty_is_in_the_reported_loss():
    w = np.array([[1.0, -2.0]], np.float32)
    plain = Sequential([Input((1,)), Dense(2, "softmax")], backend="numpy")
    reg = Sequential([Input((1,)), Dense(2, "softmax", kernel_regularizer=regularizers.L1L2(0.1, 0.2))],
                     backend="numpy")
    x, y = np.ones((4, 1), np.float32), np.zeros(4, np.int32)
    losses = []
    for m in (plain, reg):
        m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
        m.set_weights([w, np.zeros(2, np.float32)])
        losses.append(m.evaluate(x, y))
    assert losses[1] - losses[0] == pytest.approx(0.1 * 3 + 0.2 * 5, rel=1e-6)


# ---- float64 finite differences through every new layer --------------------------------

def _stack(kind):
    reg = {"kernel_regularizer": regularizers.L1L2(0.01, 0.02), "bias_regularizer": "l2"}
    middle = {"batchnorm": [BatchNormalization(momentum=0.9)],
              "batchnorm_plain": [BatchNormalization(center=False, scale=False)],
              "dropout": [Dropout(0.3, seed=5)],
              "regularized": [],
              "normalization": []}[kind]
    first = [Normalization(mean=[0.5, -1, 2, 0, 1], variance=[2, 0.5, 1, 3, 1])] if kind == "normalization" else []
    dense = Dense(4, "tanh", **(reg if kind == "regularized" else {}))
    return [Input((5,))] + first + [dense] + middle + [Dense(3, "softmax")]


def _mean_loss(model, x, y, ws):
    acc = np.zeros(3)
    model.rng_counter[...] = 0  # the same dropout mask for every evaluation
    model.forward(x, ws, logits=True, training=True)
    model.loss_and_count(ws, y, acc)
    return acc[0] / x.shape[0]


@pytest.mark.parametrize("kind", ["batchnorm", "batchnorm_plain", "dropout", "regularized", "normalization"])
def test_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(2)
    model = Sequential(_stack(kind), backend="numpy", dtype="float64")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    x = rng.normal(size=(7, 5))
    y = rng.integers(0, 3, 7).astype(np.int32)
    ws = model.workspace(7)
    _mean_loss(model, x, y, ws)
    model.backward(x, ws)
    analytic = model.grads.copy()
    dx = ws.dz[0].copy()  # dL/d(first layer's input) only where the first layer passes it on
    numeric = central_differences(lambda: _mean_loss(model, x, y, ws), model.params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    assert np.isfinite(dx).all()


@pytest.mark.parametrize("layer", [lambda: BatchNormalization(), lambda: Dropout(0.25, seed=1),
                                   lambda: Normalization(mean=[1.0, 2, 3, 4], variance=[1.0, 4, 0.25, 2])])
def test_input_gradients_through_each_layer(layer):
    """dx of the new layers themselves: the layer first, its dL/dx against differences on x."""
    rng = np.random.default_rng(3)
    model = Sequential([Input((4,)), Dense(4, "linear"), layer(), Dense(3, "softmax")], backend="numpy",
                       dtype="float64")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    x, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6).astype(np.int32)
    ws = model.workspace(6)
    _mean_loss(model, x, y, ws)
    model.backward(x, ws)
    dx = ws.dz[0] @ model.dense_layers[0].kernel.T
    numeric = central_differences(lambda: _mean_loss(model, x, y, ws), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-8)


# ---- description and files ----------------------------------------------------------------

def _bn_net():
    return Sequential([Input((28, 28)), Flatten(), Dense(300, "relu"), BatchNormalization(), Dropout(0.2),
                       Dense(100, "relu"), BatchNormalization(), Dropout(0.2), Dense(10, "softmax")],
                      backend="numpy")


def test_summary_counts_trainable_and_non_trainable_as_keras():
    lines = []
    _bn_net().summary(print_fn=lines.append)
    text = "\n".join(lines)
    # Keras 3 prints these three lines for the same net (checked against Keras in test_keras_interop)
    assert "Total params: 268,210 (1.02 MB" in text
    assert "Trainable params: 267,410 (1.02 MB)" in text
    assert "Non-trainable params: 800 (3.12 KB)" in text
    row = next(line for line in lines if line.startswith("batch_normalization "))
    assert "(None, 300)" in row and row.endswith("1,200")  # gamma, beta and both moving statistics


def test_save_and_load_keep_state_and_config(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.random((64, 28, 28)).astype(np.float32), rng.integers(0, 10, 64).astype(np.int32)
    model = _bn_net()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"], seed=0)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, seed=0)
    bn = model.layers[2]  # Keras: model.layers leaves the Input out
    assert np.abs(bn.moving_mean).max() > 0  # training moved the statistics
    model.save(tmp_path / "m.h5")
    loaded = load_model(tmp_path / "m.h5", backend="numpy")
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.layers[3].rate == 0.2 and loaded.layers[2].momentum == 0.99


def test_normalization_adapted_state_saves(tmp_path):
    norm = Normalization()
    norm.adapt(np.random.default_rng(5).normal(2, 3, (100, 4)))
    model = Sequential([Input((4,)), norm, Dense(2, "softmax")], backend="numpy").build(seed=0)
    model.save_weights(tmp_path / "w.h5")
    other = Sequential([Input((4,)), Normalization(), Dense(2, "softmax")], backend="numpy").build(seed=1)
    other.load_weights(tmp_path / "w.h5")
    np.testing.assert_array_equal(other.layers[0].mean, norm.mean)
    np.testing.assert_array_equal(other.layers[0].variance, norm.variance)


@pytest.mark.parametrize("make,pattern", [
    (lambda: Dropout(1.5), r"Dropout\(rate\): expected a number in \[0, 1\]"),
    (lambda: Dropout(0.5, noise_shape=(1, 5)), r"Dropout\(noise_shape\)"),
    (lambda: Dropout(0.5, seed=-1), r"Dropout\(seed\)"),
    (lambda: BatchNormalization(momentum=2), r"BatchNormalization\(momentum\)"),
    (lambda: BatchNormalization(epsilon=0), r"BatchNormalization\(epsilon\): expected a positive"),
    (lambda: BatchNormalization(axis=1), r"BatchNormalization\(axis\): only -1"),
    (lambda: Normalization(mean=[1.0, 2.0], variance=[1.0]), "same shape"),
    (lambda: Normalization(mean=[0.0], variance=[-1.0]), r"variance\): expected values >= 0"),
    (lambda: Dense(3, kernel_regularizer="l3"), "regularizer: expected None, 'l1', 'l2', 'l1_l2'"),
    (lambda: regularizers.L2(-0.1), r"L2\(l2\): expected"),
    (lambda: Sequential([Input((2, 3)), BatchNormalization(), Dense(2)], backend="numpy").build(),
     "put a Flatten"),
    (lambda: Sequential([Input((3,)), Dense(2), Dropout(0.1)], backend="numpy").build(),
     "the last layer must be a Dense"),
])
def test_bad_arguments_are_named(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_resume_with_dropout_gives_the_same_weights_as_one_run(tmp_path):
    """The dropout draw counter is saved with the optimizer state: a resumed run draws the masks the
    uninterrupted run drew, so the weights match bit for bit on the NumPy backend."""
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(48, 5)).astype(np.float32), rng.integers(0, 3, 48).astype(np.int32)

    def net():
        m = Sequential([Input((5,)), Dense(8, "relu"), BatchNormalization(), Dropout(0.4), Dense(3, "softmax")],
                       backend="numpy")
        m.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", seed=0)
        return m

    straight = net()
    straight.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=1)
    first = net()
    first.fit(x, y, epochs=2, batch_size=16, verbose=0, seed=1)
    first.save(tmp_path / "ckpt.h5")
    resumed = load_model(tmp_path / "ckpt.h5", backend="numpy")
    resumed.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=resumed.fit_seed, initial_epoch=resumed.epochs_done)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)
