"""Keras users' code, written as the Keras tutorials and Géron's chapter 10 write it, with
``tf.keras`` replaced by ``mlp_gpu``. Each test is one idiom that has to run unchanged."""
import math

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import initializers

from .conftest import write_tiny_dataset


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
    model.compile(loss="mse", seed=1)
    kernel = model.get_weights()[0]
    # 235,200 draws: the sample spread is within ~0.15% of the truth, so 1% cannot fail by chance
    assert kernel.std() == pytest.approx(formula(784, 300), rel=0.01)
    assert np.abs(kernel).max() <= 2 * formula(784, 300) / initializers.TRUNCATION_SPREAD  # truncated at 2 sigma


def test_initializer_objects_and_classes_as_keras_accepts_them():
    def build(init):
        model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[50]),
                                    mlp_gpu.layers.Dense(40, kernel_initializer=init)], backend="numpy")
        model.compile(loss="mse")
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
    from .conftest import blobs

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
    from .conftest import blobs

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


def test_from_logits_with_a_linear_output_layer():
    from .conftest import blobs

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
        _classifier().compile(loss=mlp_gpu.losses.SparseCategoricalCrossentropy(from_logits=True))


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
    from .conftest import blobs

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
