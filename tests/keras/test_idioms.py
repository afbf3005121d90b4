"""Keras users' code, written as the Keras tutorials and Géron's chapter 10 write it, with
``tf.keras`` replaced by ``mlp_gpu``. Each test is one idiom that has to run unchanged."""
import math

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import Dense, Input, Sequential, initializers

from ..conftest import write_tiny_dataset


@pytest.fixture
def fashion_dir(tmp_path, monkeypatch):
    folder = write_tiny_dataset(tmp_path / "fashion-mnist")
    monkeypatch.setenv("MLP_GPU_DATA", str(tmp_path))
    return folder


# ---- item 1: the data sets return what Keras returns -------------------------------------------
def test_load_data_returns_uint8_and_tutorial_scaling_trains(fashion_dir):
    fashion_mnist = mlp_gpu.datasets.fashion_mnist.load_data()
    (X_train_full, y_train_full), (X_test, y_test) = fashion_mnist
    assert X_train_full.dtype == np.uint8 and X_train_full.shape == (240, 28, 28)
    assert y_train_full.dtype == np.uint8 and X_test.shape == (60, 28, 28)
    X_train, y_train = X_train_full[:-40] / 255.0, y_train_full[:-40]
    X_valid, y_valid = X_train_full[-40:] / 255.0, y_train_full[-40:]
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[28, 28]), mlp_gpu.layers.Flatten(),
                                mlp_gpu.layers.Dense(10, activation="softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    history = model.fit(X_train, y_train, epochs=5, validation_data=(X_valid, y_valid), verbose=0)
    assert history.history["val_accuracy"][-1] > 0.8
    # the uint8 pixels as they are give the same numbers: scaled by 1/255 on the device
    same = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[28, 28]), mlp_gpu.layers.Flatten(),
                               mlp_gpu.layers.Dense(10, activation="softmax")], backend="numpy")
    same.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    np.testing.assert_allclose(same.predict(X_test), same.predict(X_test / 255.0), rtol=1e-5, atol=1e-7)


# ---- item 8: initializers draw Keras' spread ----------------------------------------------------
@pytest.mark.parametrize("name, formula", [
    ("glorot_normal", lambda fan_in, fan_out: math.sqrt(2 / (fan_in + fan_out))),
    ("he_normal", lambda fan_in, fan_out: math.sqrt(2 / fan_in)),
    ("lecun_normal", lambda fan_in, fan_out: math.sqrt(1 / fan_in)),
])
def test_normal_initializers_have_the_formulas_spread(name, formula):
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[784]),
                                mlp_gpu.layers.Dense(300, activation="relu", kernel_initializer=name)],
                               backend="numpy")
    model.compile(optimizer="sgd", loss="mse", seed=1)
    kernel = model.get_weights()[0]
    # 235,200 draws: the sample spread is within ~0.15% of the truth, so 1% cannot fail by chance
    assert kernel.std() == pytest.approx(formula(784, 300), rel=0.01)
    assert np.abs(kernel).max() <= 2 * formula(784, 300) / initializers.TRUNCATION_SPREAD  # truncated at 2 sigma


def test_initializer_objects_and_classes_as_keras_accepts_them():
    def build(init):
        model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[50]),
                                    mlp_gpu.layers.Dense(40, kernel_initializer=init)], backend="numpy")
        model.compile(optimizer="sgd", loss="mse")
        return model.get_weights()[0]

    a, b = build(initializers.HeNormal(seed=42)), build(initializers.HeNormal(seed=42))
    np.testing.assert_array_equal(a, b)  # a seeded initializer draws the same values, as in Keras
    assert not np.array_equal(a, build(initializers.HeNormal(seed=43)))
    assert build(initializers.he_uniform).std() == pytest.approx(math.sqrt(2 / 50), rel=0.05)
    assert build(initializers.RandomNormal(stddev=0.01, seed=0)).std() == pytest.approx(0.01, rel=0.05)
    values = initializers.GlorotUniform(seed=3)(shape=(20, 30))
    assert values.shape == (20, 30) and np.abs(values).max() <= math.sqrt(6 / 50)


def test_initializer_spread_matches_keras_itself(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")  # Keras 3 on PyTorch CPU, a dev dependency
    import keras
    ours = initializers.LecunNormal(seed=0)(shape=(500, 400))
    theirs = np.asarray(keras.initializers.LecunNormal(seed=0)(shape=(500, 400)))
    assert ours.std() == pytest.approx(theirs.std(), rel=0.01)
    # the same truncation: Keras on PyTorch keeps a rare draw beyond 2 sigma (its 4-try trick), so compare quantiles
    assert np.quantile(np.abs(ours), 0.99) == pytest.approx(np.quantile(np.abs(theirs), 0.99), rel=0.02)


# ---- item 6: reproducibility --------------------------------------------------------------------
def _run_with_global_seed(x, y):
    mlp_gpu.utils.set_random_seed(42)
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(16, activation="relu"),
                                mlp_gpu.layers.Dense(3, activation="softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    history = model.fit(x, y, epochs=2, verbose=0)
    return model.get_weights(), history.history["loss"]


def test_set_random_seed_makes_runs_repeatable():
    from ..conftest import blobs

    x, y = blobs(n=200)
    (w1, loss1), (w2, loss2) = _run_with_global_seed(x, y), _run_with_global_seed(x, y)
    assert loss1 == loss2
    for a, b in zip(w1, w2):
        np.testing.assert_array_equal(a, b)


# ---- item 9: small ones -------------------------------------------------------------------------
def test_to_categorical():
    y = mlp_gpu.utils.to_categorical([0, 2, 1], num_classes=3)
    np.testing.assert_array_equal(y, [[1, 0, 0], [0, 0, 1], [0, 1, 0]])
    assert mlp_gpu.utils.to_categorical(np.array([[1], [3]])).shape == (2, 4)
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 1\]"):
        mlp_gpu.utils.to_categorical([0, 2], num_classes=2)


# ---- item 5: loss and optimizer objects and functions ------------------------------------------
def _classifier(out_activation="softmax"):
    return mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(16, activation="relu"),
                               mlp_gpu.layers.Dense(3, activation=out_activation)], backend="numpy")


@pytest.mark.parametrize("loss", [mlp_gpu.losses.SparseCategoricalCrossentropy(),
                                  mlp_gpu.losses.sparse_categorical_crossentropy,
                                  "sparse_categorical_crossentropy", "SparseCategoricalCrossentropy"])
def test_loss_objects_functions_and_names_train_the_same(loss):
    from ..conftest import blobs

    x, y = blobs(n=200)
    model = _classifier()
    model.compile(loss=loss, optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.01), seed=3)
    model.fit(x, y, epochs=2, verbose=0, seed=3)
    reference = _classifier()
    reference.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=3)
    reference.fit(x, y, epochs=2, verbose=0, seed=3)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)
    # the object and the function give the mean loss evaluate reports, on the host
    probs = model.predict(x)
    assert mlp_gpu.losses.SparseCategoricalCrossentropy()(y, probs) == pytest.approx(model.evaluate(x, y), rel=1e-5)
    assert mlp_gpu.losses.sparse_categorical_crossentropy(y, probs).mean() == pytest.approx(model.evaluate(x, y),
                                                                                             rel=1e-5)


def test_from_logits_with_a_linear_output_layer(tmp_path):
    from ..conftest import blobs

    x, y = blobs(n=200)
    model = _classifier(out_activation=None)
    model.compile(loss=mlp_gpu.losses.SparseCategoricalCrossentropy(from_logits=True), optimizer="sgd",
                  metrics=["accuracy"], seed=0)
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    logits = model.predict(x)  # the linear layer's outputs, as in Keras
    loss = mlp_gpu.losses.sparse_categorical_crossentropy(y, logits, from_logits=True).mean()
    assert model.evaluate(x, y)[0] == pytest.approx(loss, rel=1e-5)
    with pytest.raises(ValueError, match="needs a linear output layer.*from_logits=True"):
        _classifier().compile(optimizer="sgd", loss=mlp_gpu.losses.SparseCategoricalCrossentropy(from_logits=True))
    for name in ("logits.keras", "logits.h5"):  # the loss keeps from_logits through both file formats
        model.save(tmp_path / name)
        assert mlp_gpu.models.load_model(tmp_path / name).loss.from_logits


@pytest.mark.parametrize("loss", [mlp_gpu.losses.MeanSquaredError(), "mean_squared_error", "mse",
                                  mlp_gpu.losses.mean_squared_error])
def test_regression_losses(loss):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + 0.3
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[4]), mlp_gpu.layers.Dense(1)], backend="numpy")
    model.compile(loss=loss, optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.05), seed=0)
    history = model.fit(x, y, epochs=20, verbose=0)
    assert history.history["loss"][-1] < 1e-3
    assert model.evaluate(x, y) == pytest.approx(mlp_gpu.losses.MeanSquaredError()(y[:, None], model.predict(x)),
                                                 rel=1e-4)


def test_loss_functions_match_keras(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    import keras

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, 6)
    onehot = np.eye(4)[labels]
    cases = [("sparse_categorical_crossentropy", labels, probs, {}),
             ("sparse_categorical_crossentropy", labels, logits, {"from_logits": True}),
             ("categorical_crossentropy", onehot, probs, {}),
             ("binary_crossentropy", onehot, 1 / (1 + np.exp(-logits)), {}),
             ("binary_crossentropy", onehot, logits, {"from_logits": True}),
             ("mean_squared_error", onehot, logits, {})]
    for name, t, p, kwargs in cases:
        ours = getattr(mlp_gpu.losses, name)(t, p, **kwargs)
        theirs = np.asarray(getattr(keras.losses, name)(t, p, **kwargs))
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, err_msg=name)


def test_learning_rate_reads_and_assigns_as_in_keras():
    model = _classifier()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.01))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)
    assert model.optimizer.learning_rate.numpy() == np.float32(0.01)
    model.optimizer.learning_rate = 0.001
    assert model.backend.to_host(model.optimizer.hyper)[0] == np.float32(0.001)  # the slot the next step reads
    model.optimizer.learning_rate.assign(0.5)
    assert float(model.optimizer.learning_rate) == 0.5 and f"{model.optimizer.learning_rate:.1f}" == "0.5"


# ---- item 7: a NaN loss ------------------------------------------------------------------------
class ExponentialLearningRate(mlp_gpu.callbacks.Callback):
    """Géron's learning-rate range test: grow the rate each batch, record the loss."""

    def __init__(self, factor):
        self.factor = factor
        self.rates, self.losses = [], []

    def on_batch_end(self, batch, logs=None):
        lr = self.model.optimizer.learning_rate.numpy() * self.factor
        self.rates.append(lr)
        self.losses.append(logs["loss"])
        self.model.optimizer.learning_rate = lr


def test_nan_loss_returns_the_history_and_never_reaches_a_checkpoint(tmp_path, caplog):
    from ..conftest import blobs

    x, y = blobs(n=640)
    model = _classifier()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=mlp_gpu.optimizers.SGD(learning_rate=1e-3),
                  metrics=["accuracy"], seed=0)
    checkpoint = mlp_gpu.callbacks.ModelCheckpoint(str(tmp_path / "best.h5"))
    expon_lr = ExponentialLearningRate(factor=3)
    with np.errstate(all="ignore"):
        history = model.fit(x, y, epochs=3, callbacks=[expon_lr, checkpoint], verbose=0)
    assert len(history.history["loss"]) == 3 and math.isnan(history.history["loss"][-1])  # Keras: loss: nan
    assert any(math.isnan(loss) for loss in expon_lr.losses) and expon_lr.rates[-1] > 1e6
    assert "training diverged" in caplog.text and "on_nan='raise'" in caplog.text
    assert not (tmp_path / "best.h5").exists()  # every epoch ended with non-finite weights: nothing saved
    with np.errstate(all="ignore"), pytest.raises(mlp_gpu.TrainingDiverged):
        model.fit(x, y, epochs=1, verbose=0, on_nan="raise")  # the strict switch


# ---- item 4: metrics ---------------------------------------------------------------------------
def _regression_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5)).astype(np.float32)
    y = (X @ rng.normal(size=5) + 0.1 * rng.normal(size=300)).astype(np.float32)
    return X[:200], y[:200], X[200:], y[200:]


def _regressor():
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[5]), mlp_gpu.layers.Dense(30, activation="relu"),
                                mlp_gpu.layers.Dense(1)], backend="numpy")
    return model


def test_regression_metrics_by_name_class_and_function():
    X_train, y_train, X_valid, y_valid = _regression_data()
    model = _regressor()
    model.compile(loss="mse", optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.01),
                  metrics=["RootMeanSquaredError", mlp_gpu.metrics.RootMeanSquaredError(), "mae",
                           mlp_gpu.metrics.mean_absolute_error, "mse"], seed=0)
    history = model.fit(X_train, y_train, epochs=3, validation_data=(X_valid, y_valid), verbose=0)
    names = ["RootMeanSquaredError", "root_mean_squared_error", "mae", "mean_absolute_error", "mse"]
    assert list(history.history) == ["loss"] + names + ["val_loss"] + ["val_" + n for n in names]
    mse_test, *metrics = model.evaluate(X_valid, y_valid)  # [loss, *metrics] in compile's order
    assert len(metrics) == 5 and model.metrics_names == ["loss"] + names
    error = model.predict(X_valid)[:, 0] - y_valid
    assert mse_test == pytest.approx(np.mean(error ** 2), rel=1e-5)
    np.testing.assert_allclose(metrics, [np.sqrt(np.mean(error ** 2))] * 2 + [np.mean(np.abs(error))] * 2
                               + [np.mean(error ** 2)], rtol=1e-5)
    assert history.history["val_mse"][-1] == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


def test_classification_metrics_and_evaluate_order():
    from ..conftest import blobs

    x, y = blobs(n=300)
    model = _classifier()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd",
                  metrics=["sparse_categorical_accuracy", "accuracy"], seed=0)
    history = model.fit(x, y, epochs=3, verbose=0)
    assert set(history.history) == {"loss", "sparse_categorical_accuracy", "accuracy"}
    loss, sca, acc = model.evaluate(x, y)
    assert sca == acc == pytest.approx(np.mean(model.predict(x).argmax(axis=1) == y))
    assert model.evaluate(x, y, return_dict=True) == {"loss": loss, "sparse_categorical_accuracy": sca,
                                                      "accuracy": acc}
    one_hot = mlp_gpu.utils.to_categorical(y)
    dense = _classifier()
    dense.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=[mlp_gpu.metrics.CategoricalAccuracy(),
                                                            mlp_gpu.metrics.BinaryAccuracy(), "mse"], seed=0)
    _, cat, binary, mse = dense.evaluate(x, one_hot)
    probs = dense.predict(x)
    assert cat == pytest.approx(np.mean(probs.argmax(axis=1) == y))
    assert binary == pytest.approx(np.mean((probs > 0.5) == one_hot), rel=1e-6)
    assert mse == pytest.approx(np.mean((probs - one_hot) ** 2), rel=1e-5)  # on probabilities, not logits
    with pytest.raises(ValueError, match="'categorical_accuracy' needs .*targets.*sparse_categorical_accuracy"):
        _classifier().compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["categorical_accuracy"])


def test_metrics_match_keras_history(monkeypatch):
    """The same data, initial weights and plain SGD in Keras and here: same History keys and values."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    import keras

    X_train, y_train, X_valid, y_valid = _regression_data()
    metrics = ["RootMeanSquaredError", "mae"]
    ours = _regressor()
    ours.compile(loss="mse", optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.01), metrics=metrics, seed=0)
    theirs = keras.Sequential([keras.Input(shape=[5]), keras.layers.Dense(30, activation="relu"),
                               keras.layers.Dense(1)])
    theirs.set_weights(ours.get_weights())
    theirs.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.01), metrics=metrics)
    h_ours = ours.fit(X_train, y_train, epochs=2, shuffle=False, validation_data=(X_valid, y_valid), verbose=0)
    h_theirs = theirs.fit(X_train, y_train, epochs=2, shuffle=False, validation_data=(X_valid, y_valid), verbose=0)
    assert sorted(h_ours.history) == sorted(h_theirs.history)
    for key, values in h_theirs.history.items():
        np.testing.assert_allclose(h_ours.history[key], values, rtol=2e-4, err_msg=key)
    np.testing.assert_allclose(ours.evaluate(X_valid, y_valid), theirs.evaluate(X_valid, y_valid, verbose=0),
                               rtol=2e-4)


# ---- item 2: the book's model definitions --------------------------------------------------------
def test_flatten_input_shape_and_layer_access_as_in_the_book():
    model = mlp_gpu.models.Sequential([
        mlp_gpu.layers.Flatten(input_shape=[28, 28]),
        mlp_gpu.layers.Dense(300, activation="relu"),
        mlp_gpu.layers.Dense(100, activation="relu"),
        mlp_gpu.layers.Dense(10, activation="softmax"),
    ], backend="numpy")
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense", "Dense"]
    hidden1 = model.layers[1]
    assert hidden1.name == "dense" and model.get_layer("dense") is hidden1
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    weights, biases = hidden1.get_weights()
    assert weights.shape == (784, 300) and biases.shape == (300,) and not biases.any()
    np.testing.assert_array_equal(weights, model.get_weights()[0])
    np.testing.assert_array_equal(np.asarray(hidden1.kernel), weights)
    hidden1.set_weights([np.ones((784, 300)), np.full(300, 0.5)])
    assert model.get_weights()[0].min() == 1 and model.get_weights()[1].max() == 0.5  # the model's own buffers
    with pytest.raises(ValueError, match=r"weights\[0\]: expected shape \(784, 300\)"):
        hidden1.set_weights([np.ones((300, 784)), np.zeros(300)])
    with pytest.raises(ValueError, match="no layer named 'nope'.*dense_1"):
        model.get_layer("nope")
    assert model.get_layer(index=2) is model.layers[2]


def test_input_layer_and_input_dim():
    model = mlp_gpu.Sequential([mlp_gpu.layers.InputLayer(input_shape=[28, 28]), mlp_gpu.layers.Flatten(),
                                mlp_gpu.layers.Dense(10, activation="softmax")], backend="numpy")
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense"]  # the input is no layer
    model.summary(print_fn=lambda line: None)
    assert model.count_params() == 7850
    by_dim = mlp_gpu.Sequential([mlp_gpu.layers.Dense(4, input_dim=8), mlp_gpu.layers.Dense(1)], backend="numpy")
    by_dim.compile(optimizer="sgd", loss="mse")
    assert by_dim.get_weights()[0].shape == (8, 4)


# ---- item 3: deferred build -------------------------------------------------------------------
def test_sequential_add_without_input_shape_builds_on_first_fit():
    from ..conftest import blobs

    x, y = blobs(n=200)
    mlp_gpu.utils.set_random_seed(42)
    model = mlp_gpu.Sequential(backend="numpy")
    model.add(mlp_gpu.layers.Dense(16, activation="relu"))
    model.add(mlp_gpu.layers.Dense(3, activation="softmax"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    assert not model.built
    history = model.fit(x, y, epochs=10, verbose=0)
    assert model.built and model.layers[0].get_weights()[0].shape == (8, 16)
    assert history.history["accuracy"][-1] > 0.9
    images = mlp_gpu.Sequential([mlp_gpu.layers.Flatten(), mlp_gpu.layers.Dense(10, activation="softmax")],
                                backend="numpy")
    probs = images.predict(np.zeros((2, 28, 28), np.uint8))  # predict builds too, as in Keras
    assert probs.shape == (2, 10) and images.count_params() == 7850


# ---- item 6: a seed given to compile is never ignored ------------------------------------------
def test_compile_seed_after_summary_redraws_and_after_training_refuses():
    from ..conftest import blobs

    def fresh():
        return mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(3, activation="softmax")],
                                  backend="numpy")

    reference = fresh()
    reference.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=7)
    model = fresh()
    model.summary(print_fn=lambda line: None)  # builds the model with unseeded weights
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=7)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(a, b)  # the seed took effect
    x, y = blobs(n=64)
    model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match=r"compile\(seed=7\).*trained or set weights"):
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=7)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")  # recompiling keeps the weights


# ---- item 9: load_model's arguments and the .keras suffix --------------------------------------
def test_load_model_custom_objects_compile_false_and_keras_suffix(tmp_path):
    def my_init(shape, dtype=None):
        return np.full(shape, 0.01)

    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[4]),
                                mlp_gpu.layers.Dense(2, kernel_initializer=my_init)], backend="numpy")
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    model.save(tmp_path / "my_model.h5")
    with pytest.raises(ValueError, match="custom_objects"):
        mlp_gpu.models.load_model(tmp_path / "my_model.h5")
    loaded = mlp_gpu.models.load_model(tmp_path / "my_model.h5", custom_objects={"my_init": my_init})
    assert loaded.metrics_names == ["loss", "mae"]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    bare = mlp_gpu.models.load_model(tmp_path / "my_model.h5", custom_objects={"my_init": my_init}, compile=False)
    assert bare.loss is None and bare.predict(np.ones((1, 4))).shape == (1, 2)

    plain = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[4]), mlp_gpu.layers.Dense(2)], backend="numpy")
    plain.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    plain.save(tmp_path / "my_model.keras")
    again = mlp_gpu.models.load_model(tmp_path / "my_model.keras")
    for a, b in zip(plain.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.ones((3, 4), np.float32)
    np.testing.assert_allclose(again.predict(x), plain.predict(x), rtol=1e-6)


def test_an_epoch_stopped_early_logs_the_mean_over_the_rows_it_trained():
    from ..conftest import blobs

    class StopAfterThree(mlp_gpu.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            self.last = logs
            if batch == 2:
                self.model.stop_training = True

    x, y = blobs(n=320)
    model = _classifier()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"], seed=0)
    stop = StopAfterThree()
    history = model.fit(x, y, batch_size=32, epochs=5, verbose=0, callbacks=[stop])
    assert history.epoch == [0] and history.history["loss"][0] == stop.last["loss"]  # 96 rows, not 320


def test_binary_accuracy_on_logits_thresholds_at_probability_one_half():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=200) > 0).astype(np.float32)
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[3]), mlp_gpu.layers.Dense(1)], backend="numpy")
    model.compile(optimizer="sgd",
                  loss=mlp_gpu.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"], seed=0)
    model.fit(x, y, epochs=3, verbose=0)
    logits = model.predict(x)[:, 0]
    assert model.evaluate(x, y)[1] == pytest.approx(np.mean((logits > 0) == y))


def test_normalization_first_layer_as_in_the_book(tmp_path):
    X_train, y_train, X_valid, y_valid = _regression_data()
    norm_layer = mlp_gpu.layers.Normalization(input_shape=X_train.shape[1:])
    model = mlp_gpu.Sequential([norm_layer, mlp_gpu.layers.Dense(30, activation="relu"),
                                mlp_gpu.layers.Dropout(0.1), mlp_gpu.layers.Dense(1)], backend="numpy")
    model.compile(loss="mse", optimizer=mlp_gpu.optimizers.Adam(learning_rate=1e-3),
                  metrics=["RootMeanSquaredError"], seed=0)
    norm_layer.adapt(X_train)
    model.fit(X_train, y_train, epochs=2, verbose=0)
    mse_test, rmse_test = model.evaluate(X_valid, y_valid)
    assert rmse_test == pytest.approx(np.sqrt(mse_test), rel=1e-5)
    model.save(tmp_path / "norm.h5")
    np.testing.assert_allclose(mlp_gpu.models.load_model(tmp_path / "norm.h5").predict(X_valid),
                               model.predict(X_valid), rtol=1e-6)


def test_weight_variables_match_keras_names_shapes_and_trainability(monkeypatch):
    """model.weights / trainable_weights / non_trainable_weights as Keras lists them, for the same net."""
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    import keras

    from mlp_gpu import BatchNormalization

    def describe(variables):
        return [(v.path.split("/")[-1], tuple(v.shape)) for v in variables]

    theirs = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                               keras.layers.BatchNormalization(), keras.layers.Dense(3, activation="softmax")])
    ours = Sequential([Input((8,)), Dense(16, "relu"), BatchNormalization(), Dense(3, "softmax")], backend="numpy")
    for kind in ("weights", "trainable_weights", "non_trainable_weights", "variables", "trainable_variables"):
        assert describe(getattr(ours, kind)) == describe(getattr(theirs, kind)), kind
    for ours_layer, their_layer in zip(ours.layers, theirs.layers, strict=True):
        assert describe(ours_layer.trainable_weights) == describe(their_layer.trainable_weights)
    kernel = ours.weights[0]
    assert kernel.dtype == "float32" and kernel.ndim == 2 and kernel.trainable and kernel.path.endswith("/kernel")
    kernel.assign(np.ones((8, 16)))
    np.testing.assert_array_equal(ours.get_weights()[0], np.ones((8, 16)))
    np.testing.assert_array_equal(np.asarray(kernel), kernel.numpy())
    before = kernel.numpy()
    before[...] = 5  # numpy() is a copy, as in Keras
    assert kernel.numpy().max() == 1
    with pytest.raises(ValueError, match=r"kernel.assign\[0\]: expected shape \(8, 16\)"):
        kernel.assign(np.ones((16, 8)))
    ours.set_weights(ours.weights)  # Keras' idiom: the variables read as arrays
    assert sum(int(np.prod(v.shape)) for v in ours.trainable_weights) == \
        sum(int(np.prod(v.shape)) for v in theirs.trainable_weights)


def test_calling_the_model_predicts_as_keras_does():
    model = Sequential([Input((4,)), Dense(3, "softmax")], backend="numpy")
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model.predict(x, verbose=0))
    np.testing.assert_array_equal(model(x, training=False), model.predict(x, verbose=0))
    np.testing.assert_array_equal(model(x, training=True), model.predict(x, verbose=0))  # no dropout: the same
    with pytest.raises(ValueError, match="training: expected True or False"):
        model(x, training="yes")


def test_clear_session_drops_unreachable_models_as_keras():
    import weakref

    model = Sequential([Input((4,)), Dense(3, "softmax")], backend="numpy")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(np.zeros((8, 4), np.float32), np.zeros(8, np.int64), verbose=0)
    ref = weakref.ref(model)
    del model
    mlp_gpu.utils.clear_session()
    mlp_gpu.backend.clear_session(free_memory=False)  # keras.backend.clear_session's spelling
    assert ref() is None
