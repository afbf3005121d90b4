"""Géron's chapter-11 idioms, each written once and run twice: with ``K = mlp_gpu`` and with ``K = keras``
(Keras 3 on PyTorch's CPU build). Both models start from the same weights (ours copied into Keras'),
train on the same rows in the same order (``shuffle=False``), and must end with the same weights."""
import os

import numpy as np
import pytest

import mlp_gpu

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras", reason="Keras 3 is a dev dependency (make test installs it)")

RTOL, ATOL = 2e-4, 2e-5  # float32 through two frameworks' different summation orders, two epochs


def data(n=96, features=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x[:, :classes].argmax(axis=1) + (x[:, -1] > 1)).astype(np.int64) % classes
    return x, y


def hidden(K, name):
    """The hidden part of each chapter-11 net, as the book writes it (with K for tf.keras)."""
    return {
        "use_bias_false_batchnorm": [K.layers.Dense(16, kernel_initializer="he_normal", use_bias=False),
                                     K.layers.BatchNormalization(), K.layers.Activation("relu")],
        "leaky_relu": [K.layers.Dense(16, kernel_initializer="he_normal"), K.layers.LeakyReLU(negative_slope=0.2)],
        "prelu": [K.layers.Dense(16, kernel_initializer="he_normal"), K.layers.PReLU()],
        "selu": [K.layers.Dense(16, activation="selu", kernel_initializer="lecun_normal")],
        "elu": [K.layers.Dense(16, activation="elu", kernel_initializer="he_normal")],
        "gelu": [K.layers.Dense(16, activation="gelu", kernel_initializer="he_normal")],
        "swish": [K.layers.Dense(16, activation="swish", kernel_initializer="he_normal")],
        "max_norm": [K.layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                                    kernel_constraint=K.constraints.max_norm(1.))],
        "relu": [K.layers.Dense(16, activation="relu", kernel_initializer="he_normal")],
    }[name]


def optimizer(K, name):
    return {
        "sgd": lambda: K.optimizers.SGD(learning_rate=0.05),
        "momentum": lambda: K.optimizers.SGD(learning_rate=0.01, momentum=0.9),
        "nesterov": lambda: K.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True),
        "adagrad": lambda: K.optimizers.Adagrad(learning_rate=0.01),
        "rmsprop": lambda: K.optimizers.RMSprop(learning_rate=0.001, rho=0.9),
        "adam": lambda: K.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999),
        "adamax": lambda: K.optimizers.Adamax(learning_rate=0.001, beta_1=0.9, beta_2=0.999),
        "nadam": lambda: K.optimizers.Nadam(learning_rate=0.001, beta_1=0.9, beta_2=0.999),
        "adamw": lambda: K.optimizers.AdamW(weight_decay=1e-5, learning_rate=0.001, beta_1=0.9, beta_2=0.999),
        "exponential_decay": lambda: K.optimizers.SGD(learning_rate=K.optimizers.schedules.ExponentialDecay(
            0.05, decay_steps=4, decay_rate=0.5)),
    }[name]()


def net(K, name):
    model = K.Sequential([K.layers.Input(shape=[8]), *hidden(K, name), K.layers.Dense(3, activation="softmax")])
    return model


def train_both(build, opt, epochs=2, batch_size=16):
    """(ours, Keras') weights after the same fit from the same start."""
    x, y = data()
    ours, theirs = build(mlp_gpu), build(keras)
    ours.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer(mlp_gpu, opt), metrics=["accuracy"])
    theirs.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer(keras, opt), metrics=["accuracy"])
    theirs.set_weights(ours.get_weights())
    h1 = ours.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    h2 = theirs.fit(x, y, epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0)
    return ours, theirs, h1.history, h2.history


def assert_same_weights(ours, theirs):
    mine, keras_weights = ours.get_weights(), theirs.get_weights()
    assert [w.shape for w in mine] == [tuple(w.shape) for w in keras_weights]
    for a, b in zip(mine, keras_weights):
        np.testing.assert_allclose(a, np.asarray(b), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["use_bias_false_batchnorm", "leaky_relu", "prelu", "selu", "elu", "gelu",
                                  "swish", "max_norm"])
def test_chapter11_nets_train_as_in_keras(name):
    ours, theirs, h1, h2 = train_both(lambda K: net(K, name), "momentum")
    assert_same_weights(ours, theirs)
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    if name == "max_norm":
        kernel = ours.layers[0].get_weights()[0]
        assert np.sqrt((kernel ** 2).sum(axis=0)).max() <= 1.0 + 1e-6


@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamax", "nadam",
                                 "adamw", "exponential_decay"])
def test_every_optimizer_of_the_chapter_trains_as_in_keras(opt):
    ours, theirs, _, _ = train_both(lambda K: net(K, "relu"), opt)
    assert_same_weights(ours, theirs)


def test_transfer_learning_with_frozen_layers_as_in_keras():
    """Géron's model_B_on_A: reuse A's hidden layers, freeze them, train the new head, then unfreeze."""
    x, y = data()
    y_b = (y == 1).astype(np.float32)

    def model_a(K):
        return K.Sequential([K.layers.Input(shape=[8]), K.layers.Dense(16, activation="relu"),
                             K.layers.Dense(16, activation="relu"), K.layers.Dense(3, activation="softmax")])

    results = {}
    start_a = None
    for K in (mlp_gpu, keras):
        a = model_a(K)
        a.compile(loss="sparse_categorical_crossentropy", optimizer=K.optimizers.SGD(learning_rate=0.05))
        if start_a is None:
            start_a = a.get_weights()
        a.set_weights(start_a)
        a.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
        a_clone = K.models.clone_model(a)
        a_clone.set_weights(a.get_weights())
        b_on_a = K.Sequential(a.layers[:-1] + [K.layers.Dense(1, activation="sigmoid")])
        for layer in b_on_a.layers[:-1]:
            layer.trainable = False
        b_on_a.compile(loss="binary_crossentropy", optimizer=K.optimizers.SGD(learning_rate=0.05),
                       metrics=["accuracy"])
        b_on_a.build((None, 8))  # Keras builds the new head at the first fit: built now to give it our start
        if K is mlp_gpu:
            head = b_on_a.layers[-1].get_weights()
        else:
            b_on_a.layers[-1].set_weights(head)
        frozen_before = [w.copy() for layer in b_on_a.layers[:-1] for w in layer.get_weights()]
        b_on_a.fit(x, y_b, epochs=2, batch_size=16, shuffle=False, verbose=0)
        frozen_after = [np.asarray(w) for layer in b_on_a.layers[:-1] for w in layer.get_weights()]
        for before, after in zip(frozen_before, frozen_after):
            np.testing.assert_array_equal(before, after)  # frozen: exactly the same weights
        for layer in b_on_a.layers[:-1]:
            layer.trainable = True
        b_on_a.compile(loss="binary_crossentropy", optimizer=K.optimizers.SGD(learning_rate=0.01),
                       metrics=["accuracy"])
        b_on_a.fit(x, y_b, epochs=1, batch_size=16, shuffle=False, verbose=0)
        results[K.__name__] = ([np.asarray(w) for w in b_on_a.get_weights()],
                               [np.asarray(w) for w in a.get_weights()],
                               [np.asarray(w) for w in a_clone.get_weights()])
    (b1, a1, c1), (b2, a2, c2) = results["mlp_gpu"], results["keras"]
    for ours, theirs in zip(b1 + a1 + c1, b2 + a2 + c2):
        np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    # A shares its hidden layers with B (as in Keras: unfreezing trained them); the clone kept A's first weights
    assert not np.allclose(a1[0], c1[0])


def test_mc_dropout_as_the_book_writes_it():
    x, y = data()
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(32, activation="relu"),
                                mlp_gpu.layers.Dropout(rate=0.2), mlp_gpu.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    model.fit(x, y, epochs=2, verbose=0)
    y_probas = np.stack([model(x[:10], training=True) for sample in range(200)])
    assert y_probas.shape == (200, 10, 3)
    assert not np.allclose(y_probas[0], y_probas[1])  # a fresh mask per call
    np.testing.assert_allclose(y_probas.sum(axis=-1), 1.0, rtol=1e-5)
    # the Monte Carlo average is close to the deterministic prediction, not equal to it
    assert np.abs(y_probas.mean(axis=0) - model.predict(x[:10], verbose=0)).max() < 0.1
    np.testing.assert_array_equal(model(x[:10], training=False), model.predict(x[:10], verbose=0))


def test_the_notebooks_small_lookups_as_in_keras():
    """The learning-rate finder's K.backend.get_value/set_value, dir(schedules), keras.wrappers."""
    public = [n for n in dir(mlp_gpu.optimizers.schedules) if not n.startswith("_")]
    assert public == [n for n in dir(keras.optimizers.schedules) if not n.startswith("_")]
    assert mlp_gpu.wrappers.SKLearnClassifier.__name__ == keras.wrappers.SKLearnClassifier.__name__
    model = net(mlp_gpu, "relu")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.05))
    assert mlp_gpu.backend.get_value(model.optimizer.learning_rate) == pytest.approx(0.05)
    mlp_gpu.backend.set_value(model.optimizer.learning_rate, 0.5)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)
