"""Keras tutorial code (Géron, chapters 10 and 11) run with ``tf.keras`` replaced by ``mlp_gpu``.

Each test is written the way a Keras user writes the cells, on small subsets so the file stays fast.
"""
import numpy as np
import pytest

import mlp_gpu


@pytest.fixture(scope="module")
def fashion():
    fashion_mnist = mlp_gpu.datasets.fashion_mnist
    (X_train_full, y_train_full), (X_test, y_test) = fashion_mnist.load_data()
    X_train, y_train = X_train_full[:-5000], y_train_full[:-5000]
    X_valid, y_valid = X_train_full[-5000:], y_train_full[-5000:]
    X_train, X_valid, X_test = X_train / 255., X_valid / 255., X_test / 255.
    return X_train[:2000], y_train[:2000], X_valid[:500], y_valid[:500], X_test[:500], y_test[:500]


@pytest.fixture(scope="module")
def housing():
    """A tabular regression set in the spirit of California housing (8 features on different scales)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 8)) * [1, 10, 100, 0.1, 5, 3, 2, 1000] + [0, 5, 50, 0, 2, 1, 0, 3000]
    y = ((X - X.mean(0)) / X.std(0)) @ rng.normal(size=8) + 0.1 * rng.normal(size=1200)
    X = (X - X[:800].mean(0)) / X[:800].std(0)  # standardized as a user would before Normalization existed
    return X[:800], y[:800], X[800:1000], y[800:1000], X[1000:], y[1000:]


def test_chapter10_classification_cells(fashion):
    X_train, y_train, X_valid, y_valid, X_test, y_test = fashion
    mlp_gpu.utils.set_random_seed(42)
    model = mlp_gpu.Sequential()
    model.add(mlp_gpu.layers.Input(shape=[28, 28]))
    model.add(mlp_gpu.layers.Flatten())
    model.add(mlp_gpu.layers.Dense(300, activation="relu"))
    model.add(mlp_gpu.layers.Dense(100, activation="relu"))
    model.add(mlp_gpu.layers.Dense(10, activation="softmax"))
    lines = []
    model.summary(print_fn=lines.append)
    assert any("266,610" in line for line in lines)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    history = model.fit(X_train, y_train, epochs=2, validation_data=(X_valid, y_valid), verbose=0)
    assert history.params["epochs"] == 2 and history.params["steps"] == 63
    assert history.epoch == [0, 1]
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert history.history["val_accuracy"][-1] > 0.6  # after 2 epochs on 2,000 images; 0.1 is chance
    pd = pytest.importorskip("pandas")
    assert pd.DataFrame(history.history).shape == (2, 4)
    loss, accuracy = model.evaluate(X_test, y_test, verbose=0)
    assert accuracy > 0.6 and loss < 1.5
    X_new = X_test[:3]
    y_proba = model.predict(X_new, verbose=0)
    assert y_proba.round(2).shape == (3, 10)
    np.testing.assert_allclose(y_proba.sum(axis=1), 1, atol=1e-5)
    y_pred = y_proba.argmax(axis=-1)
    assert y_pred.shape == (3,) and (y_pred == y_test[:3]).sum() >= 1


def test_chapter10_regression_with_callbacks_saves_and_reloads(housing, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    X_train, y_train, X_valid, y_valid, X_test, y_test = housing
    mlp_gpu.utils.set_random_seed(42)
    model = mlp_gpu.Sequential([
        mlp_gpu.layers.Input(shape=X_train.shape[1:]),
        mlp_gpu.layers.Dense(30, activation="relu"),
        mlp_gpu.layers.Dense(1)])
    optimizer = mlp_gpu.optimizers.Adam(learning_rate=1e-3)
    model.compile(loss="mse", optimizer=optimizer)
    checkpoint_cb = mlp_gpu.callbacks.ModelCheckpoint("my_checkpoints.weights.h5", save_weights_only=True)
    early_stopping_cb = mlp_gpu.callbacks.EarlyStopping(patience=10, restore_best_weights=True)
    ratios = []

    class PrintValTrainRatioCallback(mlp_gpu.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            ratios.append(logs["val_loss"] / logs["loss"])

    history = model.fit(X_train, y_train, epochs=3, validation_data=(X_valid, y_valid), verbose=0,
                        callbacks=[checkpoint_cb, early_stopping_cb, PrintValTrainRatioCallback()])
    assert len(ratios) == 3 and all(np.isfinite(ratios))
    assert history.history["loss"][-1] < history.history["loss"][0]
    mse_test = model.evaluate(X_test, y_test, verbose=0)
    assert isinstance(mse_test, float)
    X_new = X_test[:3]
    y_pred = model.predict(X_new, verbose=0)
    assert y_pred.shape == (3, 1)

    model.save("my_keras_model.keras")
    reloaded = mlp_gpu.models.load_model("my_keras_model.keras")
    np.testing.assert_allclose(reloaded.predict(X_new, verbose=0), y_pred, atol=1e-6)
    model.save_weights("my_weights.weights.h5")
    other = mlp_gpu.models.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(30, activation="relu"),
                                       mlp_gpu.layers.Dense(1)])
    other.compile(loss="mse", optimizer="adam")
    other.load_weights("my_weights.weights.h5")
    np.testing.assert_allclose(other.predict(X_new, verbose=0), y_pred, atol=1e-6)
    other.load_weights("my_checkpoints.weights.h5")  # the last epoch's checkpoint loads too


def test_learning_rate_range_test_with_an_exponential_callback(housing):
    X_train, y_train = housing[:2]
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(30, activation="relu"),
                                mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer=mlp_gpu.optimizers.SGD(learning_rate=1e-4))

    class ExponentialLearningRate(mlp_gpu.callbacks.Callback):
        def __init__(self, factor):
            self.factor, self.rates, self.losses = factor, [], []

        def on_batch_end(self, batch, logs):
            lr = float(self.model.optimizer.learning_rate)
            self.rates.append(lr)
            self.losses.append(logs["loss"])
            self.model.optimizer.learning_rate = lr * self.factor

    expon_lr = ExponentialLearningRate(factor=1.5)
    history = model.fit(X_train, y_train, epochs=1, callbacks=[expon_lr], verbose=0)
    assert len(expon_lr.rates) == 25  # ceil(800 / 32) steps
    np.testing.assert_allclose(expon_lr.rates[1] / expon_lr.rates[0], 1.5, rtol=1e-6)
    assert history.epoch == [0]  # a loss that blows up still returns the History, as in Keras


class Recorder(mlp_gpu.callbacks.Callback):
    """Overrides every hook Keras 3 calls during fit, recording (hook, argument, sorted log keys)."""

    def __init__(self):
        self.calls = []

    def on_train_batch_begin(self, batch, logs=None):
        self.calls.append(("train_batch_begin", batch, sorted(logs or {})))

    def on_train_batch_end(self, batch, logs=None):
        self.calls.append(("train_batch_end", batch, sorted(logs or {})))

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin", None, sorted(logs or {})))

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", None, sorted(logs or {})))


def test_keras3_hook_names_are_called(housing):
    X_train, y_train, X_valid, y_valid = housing[:4]
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    rec = Recorder()
    model.fit(X_train[:100], y_train[:100], batch_size=50, epochs=2, verbose=0, callbacks=[rec],
              validation_data=(X_valid, y_valid))
    epoch = [("train_batch_begin", 0, []), ("train_batch_end", 0, ["loss"]),
             ("train_batch_begin", 1, []), ("train_batch_end", 1, ["loss"]),
             ("test_begin", None, []), ("test_end", None, ["loss"])]
    assert rec.calls == epoch * 2


def test_older_batch_hook_names_still_work_as_keras_aliases(housing):
    X_train, y_train = housing[:2]
    seen = []

    class Old(mlp_gpu.callbacks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch))

    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(X_train[:60], y_train[:60], batch_size=30, verbose=0, callbacks=[Old()])
    assert seen == [("begin", 0), ("end", 0), ("begin", 1), ("end", 1)]


@pytest.mark.parametrize("hook", ["on_test_batch_end", "on_predict_batch_end", "on_predict_begin"])
def test_a_hook_fit_never_calls_is_refused_not_silently_skipped(housing, hook):
    X_train, y_train = housing[:2]
    cb = type("PerTestBatch", (mlp_gpu.callbacks.Callback,), {hook: lambda self, *a, **k: None})()
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    with pytest.raises(ValueError, match=f"callbacks: PerTestBatch.{hook} would never be called"):
        model.fit(X_train, y_train, verbose=0, callbacks=[cb])


def test_callbacks_argument_takes_one_callback_as_keras_does_and_refuses_other_things(housing):
    X_train, y_train, X_valid, y_valid = housing[:4]
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    rec = Recorder()
    model.fit(X_train[:64], y_train[:64], verbose=0, callbacks=rec)
    assert rec.calls
    with pytest.raises(TypeError, match="callbacks: expected a list of Callback objects, got str"):
        model.fit(X_train, y_train, verbose=0, callbacks="early_stopping")


def test_keys_callbacks_add_to_the_logs_reach_the_history(housing):
    X_train, y_train = housing[:2]

    class AddsAKey(mlp_gpu.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["doubled_loss"] = 2 * logs["loss"]

    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer=mlp_gpu.optimizers.SGD(learning_rate=0.01))
    history = model.fit(X_train, y_train, epochs=2, verbose=0, callbacks=[
        AddsAKey(), mlp_gpu.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)])
    np.testing.assert_allclose(history.history["doubled_loss"], 2 * np.array(history.history["loss"]))
    np.testing.assert_allclose(history.history["learning_rate"], [0.005, 0.0025], rtol=1e-6)


@pytest.mark.parametrize("name", ["missing.keras", "missing.h5"])
def test_load_model_of_a_missing_file_names_the_path(tmp_path, name):
    with pytest.raises(FileNotFoundError, match=f"path: '.*{name}' does not exist"):
        mlp_gpu.models.load_model(tmp_path / name)
    (tmp_path / "folder.keras").mkdir()
    with pytest.raises(IsADirectoryError, match="is a directory, expected a model file"):
        mlp_gpu.models.load_model(tmp_path / "folder.keras")
    with pytest.raises(TypeError, match="path: expected a file path"):
        mlp_gpu.models.load_model(None)


# (base class, where Keras users import its subclasses from): keras.layers.Dropout, keras.optimizers.Nadam,
# keras.optimizers.schedules.ExponentialDecay, ... A row whose base does not exist yet is not checked.
KERAS_HOMES = [("layers", "Layer", "layers"), ("optimizers", "Optimizer", "optimizers"),
               ("callbacks", "Callback", "callbacks"), ("losses", "Loss", "losses"),
               ("initializers", "Initializer", "initializers"), ("regularizers", "Regularizer", "regularizers"),
               ("schedules", "LearningRateSchedule", "optimizers.schedules"), ("metrics", "Metric", "metrics")]


def _public_subclasses(base):
    todo, found = [base], []
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            # mlp_gpu.benchmarks is the benchmark tool, not the user API: its helper callbacks stay there
            public = sub.__module__.startswith("mlp_gpu") and not sub.__module__.startswith("mlp_gpu.benchmarks")
            if public and not sub.__name__.startswith("_"):
                found.append(sub)
    return found


def test_every_public_class_is_importable_from_its_keras_module():
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(mlp_gpu.__path__):
        if not info.name.startswith("_"):
            try:
                importlib.import_module(f"mlp_gpu.{info.name}")
            except ImportError:  # an optional dependency (e.g. a GPU-only one): its classes are not checked
                pass
    missing = []
    for module, base_name, home in KERAS_HOMES:
        base = getattr(importlib.import_module(f"mlp_gpu.{module}"), base_name, None) \
            if importlib.util.find_spec(f"mlp_gpu.{module}") else None
        if base is None:
            continue
        target = mlp_gpu
        for part in home.split("."):
            target = getattr(target, part, None)
        for cls in _public_subclasses(base):
            if getattr(target, cls.__name__, None) is not cls:
                missing.append(f"mlp_gpu.{home}.{cls.__name__} (defined in {cls.__module__})")
    assert not missing, "Keras users import these from the Keras module of their kind: " + ", ".join(missing)


@pytest.mark.parametrize("shape, error", [("abc", TypeError), (28, TypeError), ((28.5,), ValueError),
                                          (("28", "28"), ValueError), ((28, None), ValueError), ((), ValueError),
                                          ((True, 3), ValueError)])
def test_a_bad_input_shape_is_named_never_converted_silently(shape, error):
    with pytest.raises(error, match=r"Input\(shape\): expected a tuple of positive ints, got "):
        mlp_gpu.layers.Input(shape=shape)


def test_input_shapes_users_write_are_accepted():
    assert mlp_gpu.layers.Input(shape=[28, 28]).shape == (28, 28)
    assert mlp_gpu.layers.Input(shape=np.array([8])).shape == (8,)
    assert mlp_gpu.layers.Input(shape=np.zeros((5, 8)).shape[1:]).shape == (8,)


def test_binary_targets_outside_0_1_are_refused(housing):
    X_train = housing[0]
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    labels = np.arange(len(X_train)) % 3  # a 3-class label vector passed to a binary model by mistake
    with pytest.raises(ValueError, match=r"y: loss='binary_crossentropy' expects targets in \[0, 1\].* 0 to 2"):
        model.fit(X_train, labels, verbose=0)
    model.fit(X_train, labels == 1, verbose=0)  # 0/1 labels (bool too) and probabilities are fine
    model.fit(X_train, np.full(len(X_train), 0.25), verbose=0)


def test_one_optimizer_compiled_into_two_models_is_named_not_a_broadcast_error(housing):
    X_train, y_train = housing[:2]
    optimizer = mlp_gpu.optimizers.Adam(learning_rate=1e-3)
    model_a = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model_a.compile(loss="mse", optimizer=optimizer)
    model_b = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(4, activation="relu"),
                                  mlp_gpu.layers.Dense(1)])
    model_b.compile(loss="mse", optimizer=optimizer)
    model_b.fit(X_train, y_train, verbose=0)  # the model compiled last trains
    with pytest.raises(ValueError, match="optimizer: this Adam holds state for 41 parameters, but model "
                                         "'sequential' has 9: it was compiled into another model"):
        model_a.fit(X_train, y_train, verbose=0)
    model_a.compile(loss="mse", optimizer=optimizer)  # compiling again takes it back, as the message says
    model_a.fit(X_train, y_train, verbose=0)


def test_chapter11_learning_rate_scheduler_with_the_books_one_argument_schedule(housing):
    X_train, y_train = housing[:2]

    def exponential_decay(lr0, s):
        def exponential_decay_fn(epoch):
            return lr0 * 0.1 ** (epoch / s)
        return exponential_decay_fn

    exponential_decay_fn = exponential_decay(lr0=0.01, s=20)
    model = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    lr_scheduler = mlp_gpu.callbacks.LearningRateScheduler(exponential_decay_fn)
    history = model.fit(X_train, y_train, epochs=3, callbacks=[lr_scheduler], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [exponential_decay_fn(e) for e in range(3)],
                               rtol=1e-6)
    two_args = mlp_gpu.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    history = model.fit(X_train, y_train, epochs=1, callbacks=[two_args], verbose=0)
    np.testing.assert_allclose(history.history["learning_rate"], [exponential_decay_fn(2) * 0.5], rtol=1e-6)
    with pytest.raises(ValueError, match="LearningRateScheduler: the schedule's result: expected a positive "
                                         "finite number, got 'fast'"):
        model.fit(X_train, y_train, callbacks=[mlp_gpu.callbacks.LearningRateScheduler(lambda e: "fast")], verbose=0)


def test_a_model_with_a_declared_input_is_usable_before_compile(tmp_path):
    model = mlp_gpu.models.Sequential([mlp_gpu.layers.InputLayer(shape=(28, 28)), mlp_gpu.layers.Flatten(),
                                       mlp_gpu.layers.Dense(10, activation="softmax")])
    assert model.count_params() == 7850  # Keras builds a Sequential as soon as its input shape is known
    weights, biases = model.layers[-1].get_weights()
    assert weights.shape == (784, 10) and not biases.any()
    model.save(tmp_path / "untrained.keras")
    lines = []
    model.summary(line_length=80, expand_nested=True, show_trainable=True, print_fn=lines.append)
    assert any("7,850" in line for line in lines)
    deferred = mlp_gpu.Sequential([mlp_gpu.layers.Dense(10)])
    with pytest.raises(RuntimeError, match="count_params: the model is not built yet: its input shape is unknown"):
        deferred.count_params()


def test_chapter11_reusing_layers_clone_model_and_set_weights(housing):
    X_train, y_train = housing[:2]
    model_A = mlp_gpu.Sequential([mlp_gpu.layers.Input(shape=[8]), mlp_gpu.layers.Dense(16, activation="relu"),
                                  mlp_gpu.layers.Dense(1)])
    model_A.compile(loss="mse", optimizer="sgd")
    model_A.fit(X_train, y_train, epochs=1, verbose=0)
    before = model_A.predict(X_train[:5], verbose=0)
    model_A_clone = mlp_gpu.models.clone_model(model_A)
    assert [layer.name for layer in model_A_clone.layers] == [layer.name for layer in model_A.layers]
    model_A_clone.set_weights(model_A.get_weights())
    np.testing.assert_allclose(model_A_clone.predict(X_train[:5], verbose=0), before)
    # As in Keras, the two models share the layers' weights: training B changes A; the clone stays intact.
    model_B_on_A = mlp_gpu.Sequential(model_A.layers[:-1])
    model_B_on_A.add(mlp_gpu.layers.Dense(1, activation="sigmoid"))
    model_B_on_A.compile(loss="binary_crossentropy", optimizer="sgd")
    model_B_on_A.fit(X_train, y_train > 0, verbose=0)
    assert not np.allclose(model_A.predict(X_train[:5], verbose=0), before)
    np.testing.assert_array_equal(model_A.layers[0].get_weights()[0], model_B_on_A.layers[0].get_weights()[0])
    np.testing.assert_allclose(model_A_clone.predict(X_train[:5], verbose=0), before)
