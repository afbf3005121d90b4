"""Géron's chapter-12 custom loss, metric, Lambda and activation cells, each written once against an ops
module (``mlp_gpu.ops`` or ``keras.ops``) and a base class, train here and in Keras 3 (torch backend)
from the same initial weights to the same weights and logs."""
import os

import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import Sequential

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")


def cells(tf, Loss, Mean):  # noqa: N803 -- tf: the ops module (mlp_gpu.ops or keras.ops), as in the book
    def huber_fn(y_true, y_pred):
        error = y_true - y_pred
        is_small = tf.abs(error) < 1
        squared_loss = tf.square(error) / 2
        linear_loss = tf.abs(error) - 0.5
        return tf.where(is_small, squared_loss, linear_loss)

    def create_huber(threshold=1.0):
        def huber_fn(y_true, y_pred):
            error = y_true - y_pred
            is_small = tf.abs(error) < threshold
            squared_loss = tf.square(error) / 2
            linear_loss = threshold * tf.abs(error) - threshold ** 2 / 2
            return tf.where(is_small, squared_loss, linear_loss)
        return huber_fn

    class HuberLoss(Loss):
        def __init__(self, threshold=1.0, **kwargs):
            self.threshold = threshold
            super().__init__(**kwargs)

        def call(self, y_true, y_pred):
            return create_huber(self.threshold)(y_true, y_pred)

        def get_config(self):
            base_config = super().get_config()
            return {**base_config, "threshold": self.threshold}

    class HuberMetric(Mean):
        def __init__(self, threshold=1.0, name="HuberMetric", dtype=None):
            self.threshold = threshold
            self.huber_fn = create_huber(threshold)
            super().__init__(name=name, dtype=dtype)

        def update_state(self, y_true, y_pred, sample_weight=None):
            metric = self.huber_fn(y_true, y_pred)
            super().update_state(metric, sample_weight)

        def get_config(self):
            base_config = super().get_config()
            return {**base_config, "threshold": self.threshold}

    def my_softplus(z):
        return tf.log(tf.exp(z) + 1.0)

    return {"huber_fn": huber_fn, "create_huber": create_huber, "HuberLoss": HuberLoss, "HuberMetric": HuberMetric,
            "my_softplus": my_softplus}


OURS = cells(mlp_gpu.ops, mlp_gpu.losses.Loss, mlp_gpu.metrics.Mean)
THEIRS = cells(keras.ops, keras.losses.Loss, keras.metrics.Mean)

CASES = {  # name: (loss, metrics, hidden activation, a Lambda after the hidden layer)
    "huber_fn": (lambda c: c["huber_fn"], lambda c: [], "relu", None),
    "create_huber": (lambda c: c["create_huber"](2.0), lambda c: [c["create_huber"](2.0)], "relu", None),
    "HuberLoss": (lambda c: c["HuberLoss"](2.0), lambda c: ["mae"], "relu", None),
    "HuberLoss_sum": (lambda c: c["HuberLoss"](1.0, reduction="sum"), lambda c: [], "relu", None),
    "HuberMetric": (lambda c: "mse", lambda c: [c["HuberMetric"](2.0)], "relu", None),
    "Lambda": (lambda c: "mse", lambda c: [], "relu", lambda x: x * 2),
    "my_softplus": (lambda c: c["huber_fn"], lambda c: [], "my_softplus", None),
}


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(100, 8)).astype(np.float32)  # 3 batches of 32 and one of 4
    y = (x[:, :2] * [2.0, -1.0] + 0.5 + rng.normal(scale=0.5, size=(100, 2))).astype(np.float32)
    return x, y


def _model(lib, c, activation, lam):
    act = c["my_softplus"] if activation == "my_softplus" else activation
    layers = [lib.Input((8,)), lib.Dense(16, activation=act)]
    if lam is not None:
        layers.append(lib.Lambda(lam))
    return layers + [lib.Dense(2)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_custom_objects_train_as_in_keras(case):
    loss, metrics, activation, lam = CASES[case]
    x, y = _data()
    ours = Sequential(_model(mlp_gpu, OURS, activation, lam), backend="numpy")
    ours.compile(loss=loss(OURS), optimizer=mlp_gpu.SGD(0.05), metrics=metrics(OURS), seed=3)
    theirs = keras.Sequential(_model(keras.layers, THEIRS, activation, lam))
    theirs.set_weights(ours.get_weights())
    theirs.compile(loss=loss(THEIRS), optimizer=keras.optimizers.SGD(0.05), metrics=metrics(THEIRS))
    ours_h = ours.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    theirs_h = theirs.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history
    for got, want in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert set(ours_h) == set(theirs_h)
    for key in ours_h:
        np.testing.assert_allclose(ours_h[key], theirs_h[key], rtol=1e-4, err_msg=key)
    # batch_size matters to a "sum" reduction: each batch's loss is its sum
    want = theirs.evaluate(x, y, batch_size=32, return_dict=True, verbose=0)
    assert ours.evaluate(x, y, batch_size=32, return_dict=True) == pytest.approx(want, rel=1e-4)


def _saved_model():
    x, y = _data()
    model = Sequential(_model(mlp_gpu, OURS, "my_softplus", None), backend="numpy")
    model.compile(loss=OURS["HuberLoss"](2.0), optimizer="sgd", metrics=[OURS["huber_fn"]], seed=3)
    model.fit(x, y, epochs=1, verbose=0)
    return model, x


@pytest.mark.parametrize("ext", ["h5", "keras"])
def test_custom_objects_save_by_name_and_load_with_custom_objects(tmp_path, ext):
    model, x = _saved_model()
    path = tmp_path / f"m.{ext}"
    model.save(path)
    needed = {"my_softplus": OURS["my_softplus"], "HuberLoss": OURS["HuberLoss"], "huber_fn": OURS["huber_fn"]}
    for missing in needed:  # the file names each, it holds no code: without one, loading says which
        given = {k: v for k, v in needed.items() if k != missing}
        with pytest.raises(mlp_gpu.io.ModelFileError, match=f"'{missing}'.*custom_objects"):
            mlp_gpu.load_model(path, custom_objects=given)
    loaded = mlp_gpu.load_model(path, custom_objects=needed)
    assert type(loaded.loss) is OURS["HuberLoss"] and loaded.loss.threshold == 2.0
    assert loaded.metrics_names == ["loss", "huber_fn"]
    np.testing.assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-6)


def test_our_keras_file_loads_in_keras_with_its_custom_objects(tmp_path):
    model, x = _saved_model()
    model.save(tmp_path / "m.keras")
    theirs = keras.saving.load_model(tmp_path / "m.keras", custom_objects={
        "my_softplus": THEIRS["my_softplus"], "HuberLoss": THEIRS["HuberLoss"], "huber_fn": THEIRS["huber_fn"]})
    np.testing.assert_allclose(np.asarray(theirs.predict(x, verbose=0)), model.predict(x), rtol=1e-5, atol=1e-6)
    assert theirs.loss.threshold == 2.0
