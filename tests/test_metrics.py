"""Metrics against Keras 3: standalone (update_state over two batches, result, reset_state) on the same
inputs, and through compile / evaluate on a model's outputs; names, get, refusals."""
import os
import re

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, metrics

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

RNG = np.random.default_rng(11)


def _probs(rows, units, rng=RNG):
    z = rng.normal(size=(rows, units)) * 2
    return (np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)).astype(np.float32)


def _batches(kind, units=4, rows=13, rng=RNG):
    """Two (y_true, y_pred) batches of the kind a metric reads."""
    out = []
    for _ in range(2):
        if kind == "binary":
            y = rng.integers(0, 2, (rows, units)).astype(np.float32)
            p = rng.uniform(size=(rows, units)).astype(np.float32)
            p[:3] = np.round(p[:3], 1)  # predictions on the thresholds themselves
        elif kind == "onehot":
            y, p = np.eye(units, dtype=np.float32)[rng.integers(0, units, rows)], _probs(rows, units, rng)
        elif kind == "labels":
            y, p = rng.integers(0, units, rows).astype(np.int64), _probs(rows, units, rng)
        elif kind == "logits":
            y = rng.integers(0, 2, (rows, units)).astype(np.float32)
            p = rng.normal(size=(rows, units)).astype(np.float32) * 3
        else:  # real
            y = rng.normal(size=(rows, units)).astype(np.float32)
            p = (y + rng.normal(size=(rows, units)) * 0.5).astype(np.float32)
        out.append((y, p))
    return out


STANDALONE = [  # (class name, kwargs, inputs)
    ("Accuracy", {}, "labels_eq"),
    ("BinaryAccuracy", {}, "binary"),
    ("BinaryAccuracy", {"threshold": 0.3}, "binary"),
    ("CategoricalAccuracy", {}, "onehot"),
    ("SparseCategoricalAccuracy", {}, "labels"),
    ("TopKCategoricalAccuracy", {}, "onehot"),
    ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    ("SparseTopKCategoricalAccuracy", {"k": 2}, "labels"),
    ("MeanAbsoluteError", {}, "real"),
    ("MeanSquaredError", {}, "real"),
    ("RootMeanSquaredError", {}, "real"),
    ("MeanAbsolutePercentageError", {}, "real"),
    ("BinaryCrossentropy", {}, "binary"),
    ("BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, "logits"),
    ("CategoricalCrossentropy", {}, "onehot"),
    ("CategoricalCrossentropy", {"label_smoothing": 0.1}, "onehot"),
    ("SparseCategoricalCrossentropy", {}, "labels"),
    ("AUC", {}, "binary"),
    ("AUC", {"curve": "PR"}, "binary"),
    ("AUC", {"num_thresholds": 7, "summation_method": "minoring"}, "binary"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    ("AUC", {"thresholds": [0.2, 0.5, 0.7]}, "binary"),
    ("AUC", {"from_logits": True}, "logits"),
    ("Precision", {}, "binary"),
    ("Precision", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    ("Precision", {"top_k": 2}, "binary"),
    ("Precision", {"class_id": 1}, "binary"),
    ("Recall", {}, "binary"),
    ("Recall", {"thresholds": 0.3, "class_id": 2}, "binary"),
    ("Recall", {"top_k": 1}, "binary"),
    ("F1Score", {}, "onehot"),
    ("F1Score", {"average": "macro", "threshold": 0.3}, "onehot"),
    ("F1Score", {"average": "micro"}, "onehot"),
    ("F1Score", {"average": "weighted", "threshold": 0.5}, "binary"),
    ("R2Score", {}, "real"),
    ("R2Score", {"class_aggregation": "variance_weighted_average"}, "real"),
    ("R2Score", {"class_aggregation": None}, "real"),
    ("R2Score", {"num_regressors": 3}, "real"),
]


@pytest.mark.parametrize("name,kwargs,kind", STANDALONE, ids=[f"{n}-{k}-{sorted(a.items())}" for n, a, k in STANDALONE])
def test_standalone_equals_keras(name, kwargs, kind):
    if kind == "labels_eq":  # Keras' Accuracy: how often y_pred equals y_true
        batches = [(RNG.integers(0, 3, (9, 1)).astype(np.float32), RNG.integers(0, 3, (9, 1)).astype(np.float32))
                   for _ in range(2)]
    else:
        batches = _batches(kind, units=6 if kwargs.get("k", 5) == 5 and "Top" in name else 4)
    ours, theirs = getattr(metrics, name)(**kwargs), getattr(keras.metrics, name)(**kwargs)
    assert ours.name == re.sub(r"_\d+$", "", theirs.name)  # Keras numbers a second nameless AUC auc_1
    for y, p in batches:
        ours.update_state(y, p)
        theirs.update_state(y, p)
    np.testing.assert_allclose(ours.result(), keras.ops.convert_to_numpy(theirs.result()), rtol=2e-5, atol=1e-6)
    ours.reset_state()
    theirs.reset_state()
    ours.update_state(*batches[1])
    theirs.update_state(*batches[1])
    np.testing.assert_allclose(ours.result(), keras.ops.convert_to_numpy(theirs.result()), rtol=2e-5, atol=1e-6)


def test_sum_and_mean_standalone_equal_keras():
    values = [RNG.normal(size=5), RNG.normal(size=(3, 2))]
    for name in ("Sum", "Mean"):
        ours, theirs = getattr(metrics, name)(), getattr(keras.metrics, name)()
        assert ours.name == theirs.name
        for v in values:
            ours.update_state(v)
            theirs.update_state(v)
        np.testing.assert_allclose(ours.result(), float(theirs.result()), rtol=1e-6)


def test_auc_thresholds_are_keras():
    for kwargs in ({}, {"num_thresholds": 5}, {"thresholds": [0.6, 0.1]}):
        np.testing.assert_allclose(metrics.AUC(**kwargs).thresholds, keras.metrics.AUC(**kwargs).thresholds)


def test_calling_a_metric_updates_and_returns_the_running_result():
    (y1, p1), (y2, p2) = _batches("real")
    ours, theirs = metrics.MeanAbsoluteError(), keras.metrics.MeanAbsoluteError()
    for y, p in ((y1, p1), (y2, p2)):
        np.testing.assert_allclose(ours(y, p), float(theirs(y, p)), rtol=1e-6)


# ---- through compile / evaluate ----------------------------------------------------------------
COMPILED = [  # (output activation, loss, metric objects' class names and kwargs, target kind)
    ("softmax", "categorical_crossentropy", [("TopKCategoricalAccuracy", {"k": 2}), ("CategoricalCrossentropy", {}),
                                             ("CategoricalAccuracy", {}), ("MeanAbsolutePercentageError", {})],
     "onehot"),
    ("sigmoid", "binary_crossentropy", [("BinaryCrossentropy", {"label_smoothing": 0.1}), ("BinaryAccuracy", {}),
                                        ("MeanSquaredError", {})], "binary"),
    ("linear", "huber", [("MeanAbsolutePercentageError", {}), ("RootMeanSquaredError", {}),
                         ("MeanAbsoluteError", {})], "real"),
    ("softmax", "kl_divergence", [("CategoricalAccuracy", {}), ("TopKCategoricalAccuracy", {"k": 3})], "onehot"),
]


@pytest.mark.parametrize("activation,loss,metric_specs,kind", COMPILED, ids=[c[1] for c in COMPILED])
def test_compiled_metrics_equal_keras_on_the_models_outputs(activation, loss, metric_specs, kind):
    rng = np.random.default_rng(5)
    units = 4
    x = rng.normal(size=(50, 6)).astype(np.float32)
    y = _batches(kind, units, 50, rng)[0][0]
    model = Sequential([Input((6,)), Dense(8, "relu"), Dense(units, activation)], backend="numpy")
    model.compile(loss=loss, optimizer="adam",
                  metrics=[getattr(metrics, n)(**kw) for n, kw in metric_specs], seed=0)
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    logs = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    out = model.predict(x, verbose=0)
    for name, kwargs in metric_specs:
        want = getattr(keras.metrics, name)(**kwargs)
        for start in range(0, 50, 16):  # the same batches
            want.update_state(y[start:start + 16], out[start:start + 16])
        np.testing.assert_allclose(logs[want.name], float(want.result()), rtol=1e-5, atol=1e-6)


CONFUSION = [  # (output activation, loss, metric objects' class names and kwargs, target kind)
    ("sigmoid", "binary_crossentropy", [("AUC", {}), ("Precision", {}), ("Recall", {}),
                                        ("AUC", {"curve": "PR", "num_thresholds": 50, "name": "pr_auc"}),
                                        ("AUC", {"summation_method": "minoring", "name": "auc_min"}),
                                        ("Precision", {"thresholds": [0.7, 0.3], "name": "p2"}),
                                        ("Recall", {"class_id": 1, "thresholds": 0.4, "name": "r1"}),
                                        ("F1Score", {"threshold": 0.5, "average": "micro"})], "binary"),
    ("softmax", "categorical_crossentropy", [("F1Score", {}), ("F1Score", {"average": "macro", "name": "f1_macro"}),
                                             ("F1Score", {"average": "weighted", "name": "f1_weighted"}),
                                             ("AUC", {"curve": "PR", "summation_method": "majoring"}),
                                             ("Precision", {"class_id": 2}),
                                             ("Precision", {"top_k": 2, "name": "p_top2"}),
                                             ("Recall", {"top_k": 1, "class_id": 0, "name": "r_top1"})], "onehot"),
    ("linear", "mse", [("R2Score", {}), ("R2Score", {"class_aggregation": "variance_weighted_average",
                                                     "name": "r2_weighted"}),
                       ("R2Score", {"class_aggregation": None, "name": "r2_raw"}),
                       ("R2Score", {"num_regressors": 2, "name": "r2_adjusted"})], "real"),
    ("linear", "mse", [("AUC", {"from_logits": True})], "binary"),
]


def _keras_on(spec, y, out):
    name, kwargs = spec
    want = getattr(keras.metrics, name)(**kwargs)
    for start in range(0, len(y), 16):
        want.update_state(y[start:start + 16], out[start:start + 16])
    return re.sub(r"_\d+$", "", want.name), np.asarray(want.result(), np.float64)  # Keras numbers a second auc


@pytest.mark.parametrize("activation,loss,metric_specs,kind", CONFUSION,
                         ids=[f"{c[1]}-{c[2][0][0]}" for c in CONFUSION])
def test_compiled_confusion_metrics_equal_keras_each_epoch(activation, loss, metric_specs, kind):
    """Counts and column sums in several device slots: fit's per-epoch val_ logs and evaluate's equal Keras 3's
    metric on the model's outputs after that epoch; fit's own (training) logs too, with weights held still
    by a learning rate too small to move a float32 weight, so every epoch sees the outputs predict gives."""
    from mlp_gpu import callbacks, optimizers
    rng = np.random.default_rng(7)
    units = 3
    x, xv = (rng.normal(size=(rows, 6)).astype(np.float32) for rows in (50, 37))
    y, yv = (_batches(kind, units, rows, rng)[0][0] for rows in (50, 37))
    outs = []

    class Outputs(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            outs.append(self.model.predict(xv, verbose=0))

    for lr in (1e-2, 1e-30):  # 1e-30: no float32 weight moves
        model = Sequential([Input((6,)), Dense(8, "relu"), Dense(units, activation)], backend="numpy")
        model.compile(loss=loss, optimizer=optimizers.Adam(lr),
                      metrics=[getattr(metrics, n)(**kw) for n, kw in metric_specs], seed=0)
        outs.clear()
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, validation_data=(xv, yv),
                            callbacks=[Outputs()]).history
        names = [_keras_on(spec, yv, outs[0])[0] for spec in metric_specs]
        assert list(history) == ["loss", *names, "val_loss", *["val_" + n for n in names]]
        for epoch, out in enumerate(outs):
            for spec in metric_specs:
                name, want = _keras_on(spec, yv, out)
                np.testing.assert_allclose(history["val_" + name][epoch], want, rtol=1e-5, atol=1e-6,
                                           err_msg=f"val_{name}, epoch {epoch}")
        if lr < 1e-20:  # weights still: each epoch's training logs are Keras' metric on predict's outputs
            out = model.predict(x, verbose=0)
            for spec in metric_specs:
                name, want = _keras_on(spec, y, out)
                for epoch in range(3):
                    np.testing.assert_allclose(history[name][epoch], want, rtol=1e-5, atol=1e-6,
                                               err_msg=f"{name}, epoch {epoch}")
        logs = model.evaluate(xv, yv, batch_size=16, verbose=0, return_dict=True)
        for spec in metric_specs:
            name, want = _keras_on(spec, yv, model.predict(xv, verbose=0))
            np.testing.assert_allclose(logs[name], want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_confusion_metrics_by_keras_names_log_under_keras_keys():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 2, (40, 1)).astype(np.float32)
    names = ["auc", "precision", "recall", "AUC", "Precision", "Recall", "f1_score", "r2_score"]
    model = Sequential([Input((5,)), Dense(1, "sigmoid")], backend="numpy")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=names, seed=0)
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_split=0.25).history
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(1, activation="sigmoid")])
    theirs.compile(loss="binary_crossentropy", optimizer="adam", metrics=names)
    keys = theirs.fit(x, y, epochs=1, batch_size=16, verbose=0, validation_split=0.25).history
    assert sorted(history) == sorted(keys)  # the same keys ('auc', 'val_auc', ...); ours in metrics_names order
    out = model.predict(x, verbose=0)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    for name in names:
        want = keras.metrics.get(name)
        want = want() if isinstance(want, type) else want
        want.update_state(y, out)
        np.testing.assert_allclose(logs[name], float(want.result()), rtol=1e-5, atol=1e-6, err_msg=name)


def test_confusion_metrics_take_one_slot_block_each_and_thresholds_as_keras():
    model = Sequential([Input((3,)), Dense(2, "sigmoid")], backend="numpy")
    auc, precision, f1 = metrics.AUC(num_thresholds=7), metrics.Precision(thresholds=[0.2, 0.9]), metrics.F1Score()
    model.compile(loss="binary_crossentropy", metrics=[auc, "mae", precision, f1])
    start = model.metric_slots[0]
    assert model.metric_slots == [start, start + 4 * 7, start + 4 * 7 + 1, start + 4 * 7 + 1 + 3 * 2]
    assert model.sums_size == start + 4 * 7 + 1 + 3 * 2 + 4 * 2
    np.testing.assert_allclose(auc.thresholds, keras.metrics.AUC(num_thresholds=7).thresholds)
    np.testing.assert_allclose(precision.thresholds, keras.metrics.Precision(thresholds=[0.2, 0.9]).thresholds)


@pytest.mark.parametrize("metric", [metrics.Sum(), metrics.SparseTopKCategoricalAccuracy()])
def test_metrics_without_row_sums_are_refused_by_compile_with_the_reason(metric):
    model = Sequential([Input((3,)), Dense(2, "softmax")])
    loss = "sparse_categorical_crossentropy" if metric.targets == "labels" else "categorical_crossentropy"
    with pytest.raises(ValueError, match=rf"metrics: {type(metric).__name__} .*standalone"):
        model.compile(loss=loss, metrics=[metric])


# ---- names and get -----------------------------------------------------------------------------
NAMES = ["accuracy", "binary_accuracy", "categorical_accuracy", "sparse_categorical_accuracy",
         "top_k_categorical_accuracy", "sparse_top_k_categorical_accuracy", "mae", "mse", "mape", "MAPE",
         "mean_absolute_percentage_error", "root_mean_squared_error", "AUC", "auc", "Precision", "precision",
         "recall", "f1_score", "r2_score", "binary_crossentropy", "categorical_crossentropy", "bce",
         "sparse_categorical_crossentropy", "TopKCategoricalAccuracy", "R2Score", "F1Score"]


@pytest.mark.parametrize("name", NAMES)
def test_keras_names_resolve_to_the_same_metric(name):
    theirs = keras.metrics.get(name)
    ours = metrics.get(name)
    if isinstance(theirs, keras.metrics.Metric) or isinstance(theirs, type):
        assert type(ours).__name__ == (theirs if isinstance(theirs, type) else type(theirs)).__name__
    else:  # a Keras function: ours is the metric class of that function
        assert type(ours).function.__name__ == theirs.__name__ if hasattr(type(ours), "function") and \
            type(ours).function else ours.fn.__name__ == theirs.__name__


def test_default_names_are_keras():
    for cls in metrics.CLASSES + (metrics.Mean, metrics.Sum):
        assert cls().name == re.sub(r"_\d+$", "", getattr(keras.metrics, cls.__name__)().name), cls


def test_get_config_round_trips():
    for metric in (metrics.AUC(num_thresholds=9, curve="PR"), metrics.TopKCategoricalAccuracy(k=3),
                   metrics.F1Score(average="macro"), metrics.Precision(thresholds=[0.3, 0.6], class_id=1),
                   metrics.BinaryAccuracy(threshold=0.2), metrics.CategoricalCrossentropy(label_smoothing=0.1)):
        again = metrics.get(metrics.serialize(metric))
        assert type(again) is type(metric) and again.get_config() == metric.get_config()


@pytest.mark.parametrize("call,pattern", [
    (lambda: metrics.AUC(curve="XY"), r"AUC\(curve\): expected 'ROC' or 'PR'"),
    (lambda: metrics.AUC(num_thresholds=1), r"AUC\(num_thresholds\): expected an integer in \(1, "),
    (lambda: metrics.AUC(multi_label=True), r"AUC\(multi_label"),
    (lambda: metrics.TopKCategoricalAccuracy(k=0), r"TopKCategoricalAccuracy\(k\): expected a positive int"),
    (lambda: metrics.Precision(top_k=0), r"Precision\(top_k\)"),
    (lambda: metrics.Recall(thresholds=[2.0]), r"Recall\(thresholds\): expected numbers in \[0, 1\]"),
    (lambda: metrics.F1Score(average="mean"), r"F1Score\(average\)"),
    (lambda: metrics.R2Score(num_regressors=-1), r"R2Score\(num_regressors\)"),
    (lambda: metrics.Mean(dtype="float16"), r"Mean\(dtype\): only float32"),
    (lambda: metrics.BinaryAccuracy(threshold="x"), r"BinaryAccuracy\(threshold\)"),
    (lambda: metrics.get("iou"), r"metrics: expected names from"),
])
def test_bad_arguments_name_the_argument(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def test_confusion_metrics_per_output_of_a_functional_model_equal_keras(capsys):
    from mlp_gpu import Model
    rng = np.random.default_rng(9)
    x = rng.normal(size=(50, 6)).astype(np.float32)
    ya, yb = rng.integers(0, 2, (50, 2)).astype(np.float32), rng.normal(size=(50, 1)).astype(np.float32)
    inp = Input((6,))
    h = Dense(4, "relu")(inp)
    model = Model(inp, [Dense(2, "sigmoid", name="a")(h), Dense(1, name="b")(h)])
    model.compile(loss=["binary_crossentropy", "mse"], optimizer="adam",
                  metrics=[["auc", metrics.Precision(thresholds=[0.3, 0.6])], ["r2_score"]])
    model.fit(x, [ya, yb], epochs=1, batch_size=16, verbose=1)  # the bar shows a several-valued metric's mean
    logs = model.evaluate(x, [ya, yb], batch_size=16, verbose=0, return_dict=True)
    pa, pb = model.predict(x, verbose=0)
    for key, want, y, out in (("a_auc", keras.metrics.AUC(), ya, pa), ("b_r2_score", keras.metrics.R2Score(), yb, pb),
                              ("a_precision", keras.metrics.Precision(thresholds=[0.3, 0.6]), ya, pa)):
        want.update_state(y, out)
        np.testing.assert_allclose(logs[key], np.asarray(want.result()), rtol=1e-5, atol=1e-6, err_msg=key)
    shown = capsys.readouterr()
    assert "a_precision: " in shown.out + shown.err


def test_a_graph_capturing_backend_runs_plain_steps_for_confusion_metrics(monkeypatch, caplog):
    """Their counts are array expressions (temporaries): a backend that captures steps in graphs gets
    plain steps instead, and says so."""
    import logging
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(30, 4)).astype(np.float32), rng.integers(0, 2, (30, 1)).astype(np.float32)
    model = Sequential([Input((4,)), Dense(1, "sigmoid")], backend="numpy")
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["auc"], seed=0)
    monkeypatch.setattr(model.backend, "graph", True, raising=False)
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        history = model.fit(x, y, epochs=1, batch_size=8, verbose=0).history
    assert "not captured (metrics ['auc']" in caplog.text
    assert 0.0 <= history["auc"][0] <= 1.0


def test_a_saved_model_with_confusion_metrics_loads_and_evaluates_alike(tmp_path):
    from mlp_gpu.models import load_model
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(40, 5)).astype(np.float32), rng.integers(0, 2, (40, 1)).astype(np.float32)
    model = Sequential([Input((5,)), Dense(1, "sigmoid")], backend="numpy")
    model.compile(loss="binary_crossentropy", optimizer="adam", seed=0,
                  metrics=["auc", metrics.Precision(thresholds=[0.3, 0.6], name="p2"), metrics.F1Score("macro")])
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    want, got = (m.evaluate(x, y, verbose=0, return_dict=True) for m in (model, load_model(tmp_path / "m.keras")))
    assert list(got) == list(want) == ["loss", "auc", "p2", "f1_score"]
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-6, err_msg=key)
