"""The fit/evaluate/predict loops: batching, determinism, convergence, optimizers."""
import numpy as np
import pytest

from mlp_gpu import SGD, Adam, Dense, EarlyStopping, Flatten, Input, Sequential
from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.base import HYPER

from ..conftest import blobs


def small_model(optimizer="sgd", seed=0, backend="numpy", features=8, classes=3):
    model = Sequential([Input((features,)), Dense(16, "relu"), Dense(classes, "softmax")], backend=backend)
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"], seed=seed)
    return model


class RecordingBackend(NumpyBackend):
    """Records the rows each training batch gathers."""

    def __init__(self):
        self.batches = []

    def gather_rows(self, src, perm, cursor, out):
        if src.dtype != np.int32:  # images, not labels
            start = int(cursor[0])
            self.batches.append(perm[start:start + out.shape[0]].copy())
        super().gather_rows(src, perm, cursor, out)


@pytest.mark.parametrize("n,batch,steps,last", [(55000, 32, 1719, 24), (100, 32, 4, 4), (64, 32, 2, 32), (5, 32, 1, 5)])
def test_every_sample_once_per_epoch_last_batch_trained(n, batch, steps, last):
    backend = RecordingBackend()
    model = Sequential([Input((2,)), Dense(2, "softmax")], backend=backend)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    x = np.zeros((n, 2), np.float32)
    y = np.zeros(n, np.int32)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0, seed=0)
    assert len(backend.batches) == steps == model.optimizer.iterations
    assert len(backend.batches[-1]) == last
    np.testing.assert_array_equal(np.sort(np.concatenate(backend.batches)), np.arange(n))


def test_shuffle_changes_order_between_epochs_and_false_keeps_it():
    backend = RecordingBackend()
    model = Sequential([Input((2,)), Dense(2, "softmax")], backend=backend)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    x, y = np.zeros((64, 2), np.float32), np.zeros(64, np.int32)
    model.fit(x, y, batch_size=64, epochs=2, verbose=0, seed=1)
    assert not np.array_equal(backend.batches[0], backend.batches[1])
    backend.batches.clear()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(backend.batches[0], np.arange(64))


def test_same_seed_same_weights_bit_for_bit():
    x, y = blobs()
    runs = []
    for _ in range(2):
        model = small_model(seed=3)
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=5)
        runs.append(model.get_weights())
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)
    other = small_model(seed=3)
    other.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=6)
    assert not np.array_equal(other.get_weights()[0], runs[0][0])


@pytest.mark.parametrize("optimizer", ["sgd", SGD(0.05, momentum=0.9), SGD(0.05, momentum=0.9, nesterov=True),
                                       Adam(0.01)])
def test_converges_on_separable_blobs(optimizer):
    x, y = blobs(n=400)
    model = small_model(optimizer)
    history = model.fit(x, y, batch_size=16, epochs=15, verbose=0, seed=0, validation_split=0.25)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["val_accuracy"][-1] >= 0.95
    loss, acc = model.evaluate(x, y)
    assert acc >= 0.95 and loss < 0.3


def _reference_updates(opt, w, grads):
    """Keras' formulas, written plainly, for the same gradient sequence."""
    w = w.astype(np.float64).copy()
    v = np.zeros_like(w)
    m = np.zeros_like(w)
    for t, g in enumerate(grads, 1):
        if isinstance(opt, Adam):
            m = opt.beta_1 * m + (1 - opt.beta_1) * g
            v = opt.beta_2 * v + (1 - opt.beta_2) * g * g
            alpha = opt.learning_rate * np.sqrt(1 - opt.beta_2 ** t) / (1 - opt.beta_1 ** t)
            w -= alpha * m / (np.sqrt(v) + opt.epsilon)
        elif opt.momentum:
            v = opt.momentum * v - opt.learning_rate * g
            w += opt.momentum * v - opt.learning_rate * g if opt.nesterov else v
        else:
            w -= opt.learning_rate * g
    return w


@pytest.mark.parametrize("opt", [SGD(0.1), SGD(0.1, momentum=0.8), SGD(0.1, momentum=0.8, nesterov=True),
                                 Adam(0.01)])
def test_optimizer_updates_match_keras_formulas(opt):
    be = NumpyBackend()
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=50).astype(np.float32)
    grads = [rng.normal(size=50).astype(np.float32) for _ in range(5)]
    opt.build(be, 50)
    params = w0.copy()
    for g in grads:
        opt.update(params, g.copy())
        be.advance(np.zeros(1, np.int64), 1, opt.hyper)
    np.testing.assert_allclose(params, _reference_updates(opt, w0, grads), rtol=2e-5, atol=2e-6)
    assert opt.iterations == 5


def test_learning_rate_change_reaches_the_device_buffer():
    model = small_model(SGD(0.01))
    model.optimizer.learning_rate = 0.5
    assert model.optimizer.hyper[HYPER["lr"]] == np.float32(0.5)
    assert model.optimizer.learning_rate == 0.5


def test_predict_gives_probabilities_matching_evaluate():
    x, y = blobs()
    model = small_model()
    model.fit(x, y, epochs=5, verbose=0, seed=0)
    probs = model.predict(x, batch_size=7)  # an awkward batch size must not change results
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(probs, model.predict(x), rtol=1e-5, atol=1e-7)
    _, acc = model.evaluate(x, y)
    assert acc == pytest.approx(np.mean(probs.argmax(axis=1) == y))


def test_uint8_pixels_are_scaled_like_float_input():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (50, 4, 4)).astype(np.uint8)
    model = Sequential([Input((4, 4)), Flatten(), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=0)
    np.testing.assert_allclose(model.predict(pixels), model.predict(pixels.astype(np.float32) / 255), rtol=1e-6)


def test_history_has_keras_keys_and_epochs():
    x, y = blobs()
    history = small_model().fit(x, y, epochs=3, verbose=0, validation_data=(x[:50], y[:50]))
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert history.epoch == [0, 1, 2] and all(len(v) == 3 for v in history.history.values())


def test_early_stopping_stops_and_restores_best_weights():
    x, y = blobs()
    model = small_model(SGD(0.05))
    seen = []

    class Spy(EarlyStopping):
        def on_epoch_end(self, epoch, logs=None):
            seen.append((logs["loss"], self.model.get_weights()))
            super().on_epoch_end(epoch, logs)

    stopper = Spy(monitor="loss", patience=1, min_delta=10.0, restore_best_weights=True)
    history = model.fit(x, y, epochs=20, verbose=0, callbacks=[stopper], seed=0)
    # min_delta=10 means no epoch after the first counts as an improvement: stop after epoch 1.
    assert history.epoch == [0, 1] and stopper.stopped_epoch == 1
    for a, b in zip(model.get_weights(), seen[0][1]):
        np.testing.assert_array_equal(a, b)


def test_summary_counts_reference_network():
    model = Sequential([Input((28, 28)), Flatten(), Dense(300, "relu"), Dense(100, "relu"), Dense(10, "softmax")],
                       backend="numpy")
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert model.count_params() == 266_610
    assert "266,610" in text and "1,066,440 bytes" in text
    assert "(None, 300)" in text and "(None, 784)" in text


def test_get_weights_returns_copies_not_views():
    model = small_model()
    weights = model.get_weights()
    model.params[...] = 7
    assert not np.any(weights[0] == 7)
