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
