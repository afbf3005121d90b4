"""Losses against Keras 3 (values, names, configs), their gradients against float64 central differences
on the NumPy backend, and a fit with each that lowers it."""
import logging
import os

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, losses

from .harness.host_ops import HostCudaOps, compiler
from .conftest import central_differences

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

RNG = np.random.default_rng(7)
N, K = 9, 4
# name -> (our class, its arguments, targets kind, output activation for training)
CASES = {
    "mae": (losses.MeanAbsoluteError, {}, "real", "linear"),
    "mape": (losses.MeanAbsolutePercentageError, {}, "real", "linear"),
    "msle": (losses.MeanSquaredLogarithmicError, {}, "positive", "softplus"),
    "huber": (losses.Huber, {}, "real", "linear"),
    "huber_delta": (losses.Huber, {"delta": 0.3}, "real", "linear"),
    "log_cosh": (losses.LogCosh, {}, "real", "linear"),
    "kld": (losses.KLDivergence, {}, "simplex", "softmax"),
    "poisson": (losses.Poisson, {}, "positive", "softplus"),
    "hinge": (losses.Hinge, {}, "binary", "tanh"),
    "squared_hinge": (losses.SquaredHinge, {}, "binary", "tanh"),
    "categorical_hinge": (losses.CategoricalHinge, {}, "onehot", "linear"),
    "cosine": (losses.CosineSimilarity, {}, "real", "linear"),
    "mse_sum": (losses.MeanSquaredError, {"reduction": "sum"}, "real", "linear"),
    "mae_sum": (losses.MeanAbsoluteError, {"reduction": "sum"}, "real", "linear"),
    "cce_smooth": (losses.CategoricalCrossentropy, {"label_smoothing": 0.2}, "onehot", "softmax"),
    "cce_smooth_logits": (losses.CategoricalCrossentropy, {"label_smoothing": 0.1, "from_logits": True}, "onehot",
                          "linear"),
    "bce_smooth": (losses.BinaryCrossentropy, {"label_smoothing": 0.3}, "binary", "sigmoid"),
    "bce_smooth_logits": (losses.BinaryCrossentropy, {"label_smoothing": 0.3, "from_logits": True}, "binary",
                          "linear"),
}


def targets(kind, rows=N, units=K, rng=RNG):
    if kind == "real":
        return rng.normal(size=(rows, units))
    if kind == "positive":
        return rng.uniform(0.1, 3.0, (rows, units))
    if kind == "simplex":
        return rng.dirichlet(np.ones(units), rows)
    if kind == "binary":
        return rng.integers(0, 2, (rows, units)).astype(np.float64)
    return np.eye(units)[rng.integers(0, units, rows)]


def predictions(activation, rows=N, units=K, rng=RNG):
    z = rng.normal(size=(rows, units))
    if activation == "softmax":
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-z))
    if activation == "softplus":
        return np.log1p(np.exp(z))
    if activation == "tanh":
        return np.tanh(z)
    return z


def keras_loss(cls, kwargs):
    return getattr(keras.losses, cls.__name__)(**kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_equal_keras(case):
    cls, kwargs, kind, activation = CASES[case]
    y, p = targets(kind).astype(np.float32), predictions(activation).astype(np.float32)
    ours, theirs = cls(**kwargs), keras_loss(cls, kwargs)
    np.testing.assert_allclose(ours(y, p), float(theirs(y, p)), rtol=2e-5, atol=1e-6)
    none = cls(**{**kwargs, "reduction": None})
    np.testing.assert_allclose(none(y, p), keras.ops.convert_to_numpy(keras_loss(cls, {**kwargs, "reduction": None})(
        y, p)), rtol=2e-5, atol=1e-6)


FUNCTIONS = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error", "huber", "log_cosh", "kl_divergence", "poisson", "hinge",
             "squared_hinge", "categorical_hinge", "cosine_similarity", "binary_crossentropy",
             "categorical_crossentropy"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_equal_keras_per_sample(name):
    y, p = targets("simplex"), predictions("softmax")
    np.testing.assert_allclose(getattr(losses, name)(y, p), keras.ops.convert_to_numpy(
        getattr(keras.losses, name)(y.astype(np.float32), p.astype(np.float32))), rtol=2e-5, atol=1e-6)


def test_crossentropy_arguments_equal_keras():
    y, z = targets("onehot"), predictions("linear")
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    for fn, args in ((losses.categorical_crossentropy, dict(from_logits=True, label_smoothing=0.25)),
                     (losses.categorical_crossentropy, dict(label_smoothing=0.1, axis=1)),
                     (losses.binary_crossentropy, dict(from_logits=True, label_smoothing=0.4))):
        pred = z if args.get("from_logits") else p
        want = getattr(keras.losses, fn.__name__)(y.astype(np.float32), pred.astype(np.float32), **args)
        np.testing.assert_allclose(fn(y, pred, **args), keras.ops.convert_to_numpy(want), rtol=2e-5, atol=1e-6)
    # the class axis: (classes, rows) with axis=0
    want = keras.losses.categorical_crossentropy(y.T.astype(np.float32), p.T.astype(np.float32), axis=0)
    np.testing.assert_allclose(losses.categorical_crossentropy(y.T, p.T, axis=0), keras.ops.convert_to_numpy(want),
                               rtol=2e-5)


def test_sparse_ignore_class_equals_keras():
    labels = np.array([0, 2, 1, 2, 3, 2])
    z = predictions("linear", rows=6)
    for from_logits in (True, False):
        pred = z if from_logits else np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        ours = losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=2)
        theirs = keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits, ignore_class=2)
        np.testing.assert_allclose(ours(labels, pred), float(theirs(labels, pred.astype(np.float32))), rtol=2e-5)
        per_sample = losses.sparse_categorical_crossentropy(labels, pred, from_logits=from_logits, ignore_class=2)
        assert np.all(per_sample[labels == 2] == 0) and np.all(per_sample[labels != 2] > 0)
    model = Sequential([Input((3,)), Dense(4, "softmax")])
    with pytest.raises(ValueError, match=r"ignore_class=2\): training with an ignored class is not supported"):
        model.compile(loss=losses.SparseCategoricalCrossentropy(ignore_class=2))


def test_hinge_converts_binary_labels_like_keras():
    y01, p = targets("binary"), predictions("tanh")
    np.testing.assert_allclose(losses.hinge(y01, p), losses.hinge(2 * y01 - 1, p))
    soft = np.abs(targets("real"))  # not 0/1: left as they are, as Keras does
    np.testing.assert_allclose(losses.hinge(soft, p), keras.ops.convert_to_numpy(
        keras.losses.hinge(soft.astype(np.float32), p.astype(np.float32))), rtol=2e-5)


# ---- gradients on the NumPy backend, float64 ---------------------------------------------------


def _case_model(case, rows=7, seed=0):
    cls, kwargs, kind, activation = CASES[case]
    rng = np.random.default_rng(seed)
    units = 1 if kind == "binary" and cls is losses.BinaryCrossentropy else 3
    model = Sequential([Input((5,)), Dense(4, "tanh"), Dense(units, activation)], backend="numpy", dtype="float64")
    model.compile(loss=cls(**kwargs), optimizer="sgd", seed=seed)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    return model, rng.normal(size=(rows, 5)), targets(kind, rows, units, rng)


def _mean_loss(model, x, y, ws):
    acc = np.zeros(model.sums_size)
    model.forward(x, ws, logits=True)
    model.loss_and_count(ws, y, acc)
    return acc[0] / x.shape[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradients_match_finite_differences(case):
    model, x, y = _case_model(case)
    assert model.loss.traced  # every case here trains through its traced row program
    ws = model.workspace(x.shape[0])
    value = _mean_loss(model, x, y, ws)
    # one batch: the logged loss is Keras' reduced batch loss (the batch's sum with reduction="sum")
    np.testing.assert_allclose(value, model.loss(y, model.predict(x, verbose=0)), rtol=1e-9)
    model.backward(x, ws)
    analytic = model.grads.copy()
    numeric = central_differences(lambda: _mean_loss(model, x, y, ws), model.params)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_lowers_each_loss(case):
    cls, kwargs, kind, activation = CASES[case]
    rng = np.random.default_rng(1)
    units = 1 if kind == "binary" and cls is losses.BinaryCrossentropy else 3
    x = rng.normal(size=(96, 6)).astype(np.float32)
    lead = x[:, :units] * 2  # targets the inputs decide, of the kind the loss takes
    y = {"real": np.tanh(lead), "positive": np.exp(lead / 2), "binary": (lead > 0) * 1.0,
         "simplex": np.exp(lead) / np.exp(lead).sum(axis=1, keepdims=True),
         "onehot": np.eye(units)[np.argmax(lead, axis=1)]}[kind].astype(np.float32)
    model = Sequential([Input((6,)), Dense(16, "tanh"), Dense(units, activation)], backend="numpy")
    model.compile(loss=cls(**kwargs), optimizer="adam", metrics=["mae"], seed=0)
    history = model.fit(x, y, epochs=15, batch_size=16, verbose=0).history
    assert history["loss"][-1] < 0.9 * history["loss"][0], history["loss"]
    if kwargs.get("reduction") != "sum":  # evaluate's loss is Keras' mean over the rows
        np.testing.assert_allclose(model.evaluate(x, y, verbose=0)[0], model.loss(y, model.predict(x, verbose=0)),
                                   rtol=1e-5)


def test_label_smoothing_leaves_the_fused_op_and_says_so(caplog):
    model = Sequential([Input((3,)), Dense(4, "softmax")], backend="numpy")
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        model.compile(loss=losses.CategoricalCrossentropy(label_smoothing=0.1), metrics=["accuracy"])
    assert any("label_smoothing=0.1" in r.getMessage() and "traced row program" in r.getMessage()
               for r in caplog.records)
    assert model.loss.traced and not model.loss_fused
    plain = losses.CategoricalCrossentropy()
    assert not plain.traced and plain.kind() == "softmax_xent"
    # accuracy still trains with a traced loss: its own row program, equal to Keras' categorical accuracy
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), np.eye(4)[rng.integers(0, 4, 40)].astype(np.float32)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    want = keras.metrics.CategoricalAccuracy()
    want.update_state(y, model.predict(x, verbose=0))
    np.testing.assert_allclose(logs["accuracy"], float(want.result()), rtol=1e-6)


# ---- names, configs, get / serialize / deserialize ---------------------------------------------
KERAS_NAMES = ["mae", "MAE", "mse", "MSE", "mape", "MAPE", "msle", "MSLE", "kld", "KLD", "bce", "BCE", "huber",
               "log_cosh", "kl_divergence", "poisson", "hinge", "squared_hinge", "categorical_hinge",
               "cosine_similarity", "mean_absolute_error", "binary_crossentropy", "categorical_crossentropy",
               "sparse_categorical_crossentropy", "Huber", "LogCosh", "KLDivergence", "Poisson", "CosineSimilarity",
               "MeanSquaredLogarithmicError", "MeanAbsolutePercentageError", "CategoricalHinge", "SquaredHinge"]


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_keras_names_resolve_to_the_same_loss(name):
    theirs = keras.losses.get(name)
    ours = losses.get(name)
    if isinstance(theirs, keras.losses.Loss):
        assert type(ours).__name__ == type(theirs).__name__
    else:  # Keras gives the function for a function's name: ours is the loss class of that function
        assert ours.function.__name__ == theirs.__name__


@pytest.mark.parametrize("case", sorted(CASES))
def test_get_config_equals_keras_and_round_trips(case):
    cls, kwargs, _, _ = CASES[case]
    ours, theirs = cls(**kwargs), keras_loss(cls, kwargs)
    config = ours.get_config()
    # Keras' keys with Keras' values; ours also keeps Huber's delta and CosineSimilarity's axis, which Keras'
    # get_config drops (its from_config then forgets them)
    assert {k: config[k] for k in theirs.get_config()} == theirs.get_config()
    assert set(config) - set(theirs.get_config()) <= {"delta", "axis"}
    again = cls.from_config(ours.get_config())
    assert again.get_config() == ours.get_config()
    assert losses.deserialize(losses.serialize(ours)).get_config() == ours.get_config()
    assert losses.get(losses.serialize(ours)).get_config() == ours.get_config()


def test_default_names_and_serialize_by_name():
    assert losses.Huber().name == "huber_loss" == keras.losses.Huber().name
    assert losses.serialize(losses.MeanAbsoluteError()) == "mean_absolute_error"
    assert losses.serialize(losses.Huber(delta=2.0)) == {"class_name": "Huber", "config": {
        "name": "huber_loss", "reduction": "sum_over_batch_size", "delta": 2.0}}


def test_deserialize_finds_custom_objects():
    class Mine(losses.Loss):
        def call(self, y_true, y_pred):
            return (y_true - y_pred) ** 2

    got = losses.deserialize({"class_name": "Mine", "config": {"name": "m"}}, custom_objects={"Mine": Mine})
    assert isinstance(got, Mine) and got.name == "m"
    assert losses.deserialize("huber").name == "huber_loss"
    assert Mine().name == "mine"  # Keras names a nameless subclass after its class
    with pytest.raises(ValueError, match="custom_objects"):
        losses.deserialize("huber", custom_objects=["x"])


@pytest.mark.parametrize("call,pattern", [
    (lambda: losses.Huber(delta=-1), r"Huber\(delta\): expected a finite number >= 0"),
    (lambda: losses.Huber(delta="1"), r"Huber\(delta\)"),
    (lambda: losses.CategoricalCrossentropy(label_smoothing=1.5), r"label_smoothing\): expected a number in \[0, 1\]"),
    (lambda: losses.BinaryCrossentropy(axis=0), r"BinaryCrossentropy\(axis\): .* the class axis is -1"),
    (lambda: losses.CosineSimilarity(axis=True), r"CosineSimilarity\(axis\): expected an int"),
    (lambda: losses.SparseCategoricalCrossentropy(ignore_class=1.5), r"ignore_class\): expected None or an integer"),
    (lambda: losses.MeanAbsoluteError(reduction="avg"), r"MeanAbsoluteError\(reduction\): expected one of"),
    (lambda: losses.Loss(dtype="float16"), r"Loss\(dtype\): losses compute in float32"),
    (lambda: losses.CategoricalCrossentropy(from_logits=1), r"from_logits"),
    (lambda: losses.get("focal"), r"loss: expected one of"),
])
def test_bad_arguments_name_the_argument(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_a_per_sample_reduction_does_not_train():
    model = Sequential([Input((3,)), Dense(2)])
    with pytest.raises(ValueError, match=r"reduction=None\) gives one value per sample"):
        model.compile(loss=losses.MeanAbsoluteError(reduction=None))


# ---- the generated CUDA kernels, run on the host harness ------------------------------------------
@pytest.mark.parametrize("case", ["huber_delta", "cosine", "kld", "categorical_hinge", "cce_smooth", "msle"])
def test_traced_losses_train_through_the_cuda_ops_as_on_numpy(case):
    if compiler() is None:
        pytest.skip("g++ not found")
    cls, kwargs, kind, activation = CASES[case]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(70, 5)).astype(np.float32)  # batches of 32, 32 and 6
    y = targets(kind, 70, 3, rng).astype(np.float32)

    def train(backend):
        model = Sequential([Input((5,)), Dense(8, "tanh"), Dense(3, activation)], backend=backend)
        model.compile(loss=cls(**kwargs), optimizer="sgd", metrics=["accuracy", "mae"], seed=4)
        return model, model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0).history

    host = HostCudaOps()
    ours, ours_h = train(host)
    ref, ref_h = train("numpy")
    for got, want in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    for key in ref_h:
        np.testing.assert_allclose(ours_h[key], ref_h[key], rtol=2e-4, err_msg=key)
    assert host.launches.count(ours.loss.program(3).kernel_name) == 2 * 3  # one launch a step


@pytest.mark.parametrize("loss", [losses.Huber(delta=0.5), losses.CategoricalCrossentropy(label_smoothing=0.2),
                                  "kld", losses.CosineSimilarity(), losses.MeanSquaredError(reduction="sum")])
def test_hdf5_save_and_load_keep_the_loss_and_metrics(tmp_path, loss):
    from mlp_gpu import metrics
    from mlp_gpu.models.saving import load_model
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(20, 3)).astype(np.float32), np.eye(4, dtype=np.float32)[rng.integers(0, 4, 20)]
    model = Sequential([Input((3,)), Dense(4, "softmax")], backend="numpy")
    model.compile(loss=loss, optimizer="sgd", seed=1,
                  metrics=[metrics.TopKCategoricalAccuracy(k=2), "mape", metrics.CategoricalCrossentropy()])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.h5")
    back = load_model(tmp_path / "m.h5")
    assert type(back.loss) is type(model.loss) and back.loss.get_config() == model.loss.get_config()
    assert back.metrics_names == model.metrics_names
    np.testing.assert_allclose(back.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)
