"""Keras 3's model methods (models/keras_api.py): the batch methods, evaluate/predict with steps and callbacks,
pop/add, to_json/model_from_json, save's arguments and the constructors, against real Keras 3 (torch)."""
import inspect
import json
import os

import numpy as np
import pytest

from mlp_gpu import SGD, BatchNormalization, Dense, Dropout, Flatten, Input, Model, Sequential, callbacks
from mlp_gpu.models import model_from_json, save_model

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

TOL = 2e-6


def data(rows=40, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32) + (x[:, 2] > 0.5)
    return x, y


def pair(metrics=("accuracy",), lr=0.1):
    """The same net, weights and SGD in mlp_gpu and in Keras."""
    ours = Sequential([Input((5,)), Dense(7, "relu"), Dense(3, "softmax")], backend="numpy")
    ours.compile(optimizer=SGD(lr), loss="sparse_categorical_crossentropy", metrics=list(metrics) or None, seed=0)
    theirs = keras.Sequential([keras.Input((5,)), keras.layers.Dense(7, activation="relu"),
                               keras.layers.Dense(3, activation="softmax")])
    theirs.compile(optimizer=keras.optimizers.SGD(lr), loss="sparse_categorical_crossentropy",
                   metrics=list(metrics) or None)
    theirs.set_weights(ours.get_weights())
    return ours, theirs


@pytest.mark.parametrize("name", ["train_on_batch", "test_on_batch", "predict_on_batch", "evaluate", "predict",
                                  "to_json", "save", "save_weights", "load_weights"])
def test_signatures_are_keras(name):
    def params(f):
        return [(p.name, p.kind, p.default) for p in list(inspect.signature(f).parameters.values())[1:]]
    assert params(getattr(Sequential, name)) == params(getattr(keras.Model, name))
    assert params(getattr(Model, name)) == params(getattr(keras.Model, name))


def test_keras_signatures_of_pop_add_save_model_and_model_from_json():
    for ours, theirs in ((Sequential.pop, keras.Sequential.pop), (Sequential.add, keras.Sequential.add),
                         (save_model, keras.models.save_model), (model_from_json, keras.models.model_from_json)):
        assert inspect.signature(ours).parameters.keys() == inspect.signature(theirs).parameters.keys()
        assert [p.default for p in inspect.signature(ours).parameters.values()] == \
               [p.default for p in inspect.signature(theirs).parameters.values()]


def test_batch_methods_match_keras_step_by_step():
    x, y = data()
    ours, theirs = pair()
    for _ in range(3):
        a, b = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
        assert isinstance(a, list) and len(a) == 2
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=TOL)
    np.testing.assert_allclose(ours.test_on_batch(x[:17], y[:17]), theirs.test_on_batch(x[:17], y[:17]),
                               rtol=1e-5, atol=TOL)
    d_ours, d_theirs = ours.train_on_batch(x, y, return_dict=True), theirs.train_on_batch(x, y, return_dict=True)
    assert set(d_ours) == set(d_theirs) == {"loss", "accuracy"}
    assert d_ours["loss"] == pytest.approx(d_theirs["loss"], rel=1e-5)
    for w_ours, w_theirs in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(w_ours, w_theirs, rtol=1e-5, atol=TOL)
    np.testing.assert_allclose(ours.predict_on_batch(x[:9]), keras.ops.convert_to_numpy(theirs.predict_on_batch(x[:9])),
                               rtol=1e-5, atol=TOL)
    assert ours.optimizer.iterations == 4


def test_a_loss_alone_is_a_float_as_in_keras():
    x, y = data()
    ours, theirs = pair(metrics=())
    a, b = ours.train_on_batch(x, y), theirs.train_on_batch(x, y)
    assert isinstance(a, float) and a == pytest.approx(b, rel=1e-5)
    assert isinstance(ours.test_on_batch(x, y), float)


def test_train_on_batch_is_fit_on_one_batch():
    x, y = data(rows=24)
    a, _ = pair()
    b, _ = pair()
    loss = a.train_on_batch(x, y)[0]
    history = b.fit(x, y, batch_size=24, epochs=1, shuffle=False, verbose=0)
    assert loss == pytest.approx(history.history["loss"][0], rel=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)


def test_evaluate_and_predict_match_keras_with_steps():
    x, y = data(rows=100)
    ours, theirs = pair()
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.evaluate(x, y, batch_size=16, steps=3, verbose=0),
                               theirs.evaluate(x, y, batch_size=16, steps=3, verbose=0), rtol=1e-5)
    assert ours.evaluate(x, y, batch_size=32, steps=2, verbose=0) == \
        pytest.approx(ours.evaluate(x[:64], y[:64], verbose=0))
    got = ours.predict(x, batch_size=10, steps=3, verbose=0)
    assert got.shape == (30, 3)
    np.testing.assert_allclose(got, theirs.predict(x, batch_size=10, steps=3, verbose=0), rtol=1e-5, atol=TOL)
    # steps without batch_size: Keras splits x into that many batches, all rows taken
    assert ours.predict(x, steps=3, verbose=0).shape == theirs.predict(x, steps=3, verbose=0).shape == (100, 3)
    np.testing.assert_allclose(ours.evaluate(x, y, steps=3, verbose=0), theirs.evaluate(x, y, steps=3, verbose=0),
                               rtol=1e-5)
    assert ours.evaluate(x, y, return_dict=True, verbose=0).keys() == {"loss", "accuracy"}


class Recorder(callbacks.Callback):
    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def on_test_begin(self, logs=None):
        self.calls.append(("test_begin",))

    def on_test_batch_begin(self, batch, logs=None):
        self.calls.append(("test_batch_begin", batch))

    def on_test_batch_end(self, batch, logs=None):
        self.calls.append(("test_batch_end", batch, dict(logs)))
        if self.stop_after is not None and batch + 1 >= self.stop_after:
            self.model.stop_evaluating = True

    def on_test_end(self, logs=None):
        self.calls.append(("test_end", dict(logs)))

    def on_predict_begin(self, logs=None):
        self.calls.append(("predict_begin",))

    def on_predict_batch_begin(self, batch, logs=None):
        self.calls.append(("predict_batch_begin", batch))

    def on_predict_batch_end(self, batch, logs=None):
        out = logs["outputs"]
        self.calls.append(("predict_batch_end", batch, [o.shape for o in out] if isinstance(out, list) else out.shape))

    def on_predict_end(self, logs=None):
        self.calls.append(("predict_end",))


def test_evaluate_calls_the_test_hooks_with_running_logs():
    x, y = data(rows=70)
    ours, _ = pair()
    rec = Recorder()
    result = ours.evaluate(x, y, callbacks=[rec], verbose=0, return_dict=True)
    kinds = [c[0] for c in rec.calls]
    assert kinds == ["test_begin"] + ["test_batch_begin", "test_batch_end"] * 3 + ["test_end"]  # 32, 32, 6 rows
    assert [c[1] for c in rec.calls if c[0] == "test_batch_end"] == [0, 1, 2]
    first = rec.calls[2][2]
    assert first["loss"] == pytest.approx(ours.evaluate(x[:32], y[:32], verbose=0)[0], rel=1e-6)
    assert rec.calls[-1][1] == pytest.approx(result)
    rec = Recorder(stop_after=2)
    stopped = ours.evaluate(x, y, callbacks=rec, verbose=0)
    assert [c[0] for c in rec.calls].count("test_batch_end") == 2
    assert stopped == pytest.approx(ours.evaluate(x[:64], y[:64], verbose=0))


def test_predict_calls_the_predict_hooks_with_each_batch():
    x, _ = data(rows=50)
    ours, _ = pair()
    rec = Recorder()
    out = ours.predict(x, batch_size=20, callbacks=[rec], verbose=0)
    np.testing.assert_array_equal(out, ours.predict(x, verbose=0))
    assert rec.calls == [("predict_begin",), ("predict_batch_begin", 0), ("predict_batch_end", 0, (20, 3)),
                         ("predict_batch_begin", 1), ("predict_batch_end", 1, (20, 3)),
                         ("predict_batch_begin", 2), ("predict_batch_end", 2, (10, 3)), ("predict_end",)]


def test_verbose_prints_keras_progress_line(capsys):
    x, y = data(rows=100)
    ours, _ = pair()
    capsys.readouterr()
    ours.evaluate(x, y, verbose=0)
    ours.predict(x, verbose=0)
    assert capsys.readouterr().out == ""
    ours.evaluate(x, y, verbose=2)
    line = capsys.readouterr().out.strip()
    assert line.startswith("4/4 - ") and line.endswith(" - accuracy: " + line.split("accuracy: ")[1])
    assert "loss: " in line and line.index("accuracy") < line.index("loss")  # Keras' sorted order
    ours.evaluate(x, y)  # "auto": 1, a bar
    assert capsys.readouterr().out.startswith("4/4 ━")
    ours.predict(x, batch_size=50)
    assert capsys.readouterr().out.startswith("2/2 ━")


def test_bad_arguments_are_clear_errors():
    x, y = data()
    ours, _ = pair()
    for call in (lambda: ours.train_on_batch(x, y, sample_weight=np.ones(40)),
                 lambda: ours.train_on_batch(x, y, class_weight={0: 1.0}),
                 lambda: ours.test_on_batch(x, y, sample_weight=np.ones(40)),
                 lambda: ours.evaluate(x, y, sample_weight=np.ones(40))):
        with pytest.raises(NotImplementedError, match="sample_weight|class_weight"):
            call()
    with pytest.raises(ValueError, match="not recognized"):
        ours.evaluate(x, y, verbose=0, bogus=1)
    with pytest.raises(ValueError, match="steps"):
        ours.evaluate(x, y, steps=0, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        ours.predict(x, verbose=3)
    with pytest.raises(ValueError, match="return_dict"):
        ours.train_on_batch(x, y, return_dict="yes")
    with pytest.raises(TypeError, match="callbacks"):
        ours.evaluate(x, y, callbacks=[object()], verbose=0)
    with pytest.raises(RuntimeError, match="not compiled"):
        Sequential([Input((5,)), Dense(2)], backend="numpy").train_on_batch(x, y)


# ---- pop and add ----------------------------------------------------------------------------------
def test_pop_and_add_keep_the_other_layers_weights():
    x, y = data()
    model = Sequential([Input((5,)), Dense(6, "relu"), BatchNormalization(), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    before = model.get_weights()
    top = model.pop()
    assert type(top).__name__ == "Dense" and [type(la).__name__ for la in model.layers] == ["Dense",
                                                                                           "BatchNormalization"]
    assert not model.built  # a BatchNormalization cannot be the output here: built again at the next add
    model.add(Dense(2, "softmax", name="new_head"))
    assert model.built and model.get_layer("new_head").units == 2
    for a, b in zip(before[:6], model.get_weights()[:6]):
        np.testing.assert_array_equal(a, b)
    model.fit(x, y % 2, epochs=1, verbose=0)  # the optimizer was sized to the new parameters
    trained = model.get_weights()
    model.add(Dense(4, "softmax"))  # on a built model: built again at once
    assert model.built and model.predict(x, verbose=0).shape == (40, 4)
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="Input"):
        model.add(Input((5,)))  # refused: the built model is as it was
    assert model.built and len(model.layers) == 4
    popped = model.pop(rebuild=False)
    assert popped.units == 4 and model.predict(x, verbose=0).shape == (40, 2)
    assert Sequential([Input((2,)), popped], backend="numpy").build(seed=0).count_params() == 12  # free to reuse
    for a, b in zip(trained, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_pop_errors():
    with pytest.raises(IndexError, match="no layers"):
        Sequential(backend="numpy").pop()
    inputs = Input((3,))
    graph = Model(inputs, Dense(2)(inputs))
    with pytest.raises(TypeError, match="Sequential's"):
        graph.pop()
    with pytest.raises(ValueError, match="rebuild"):
        Sequential([Input((3,)), Dense(2)]).pop(rebuild="no")


# ---- to_json / model_from_json ------------------------------------------------------------------
def stack(keras_mod, input_layer, dense, flatten, dropout, bn):
    return [input_layer((2, 3)), flatten(), dense(8, activation="relu"), dropout(0.3), bn(momentum=0.9),
            dense(3, activation="softmax")]


def test_to_json_round_trip_and_keras_reads_it():
    model = Sequential(stack(None, Input, Dense, Flatten, Dropout, BatchNormalization), name="mine",
                       backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"], seed=0)
    text = model.to_json()
    config = json.loads(text)
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    assert config["config"]["name"] == "mine" and "compile_config" in config
    assert json.loads(model.to_json(indent=2)) == config  # kwargs go to json.dumps
    back = model_from_json(text)
    assert type(back) is Sequential and back.loss is None
    unseeded = lambda m: [{k: v for k, v in la.get_config().items() if k != "seed"} for la in m.layers]  # noqa: E731
    assert unseeded(back) == unseeded(model)  # Dropout's seed drawn at build is ours alone, as Keras writes None
    back.build()
    back.set_weights(model.get_weights())
    x = np.random.default_rng(3).normal(size=(11, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.predict(x, verbose=0), model.predict(x, verbose=0))
    theirs = keras.models.model_from_json(text)
    theirs.set_weights(model.get_weights())
    np.testing.assert_allclose(keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)), model.predict(x, verbose=0),
                               rtol=1e-5, atol=TOL)


def test_to_json_of_an_optimizer_without_a_keras_form_keeps_the_architecture(caplog):
    model = Sequential([Input((3,)), Dense(2, "softmax")], backend="numpy")
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", seed=0)
    config = json.loads(model.to_json())
    assert not config.get("compile_config") and "leaves out compile_config" in caplog.text
    assert type(model.optimizer).__name__ == "RMSprop"
    assert model_from_json(json.dumps(config)).get_layer(index=0).units == 2


def test_a_keras_json_loads_here():
    L = keras.layers  # noqa: N806
    theirs = keras.Sequential(stack(keras, lambda s: keras.Input(s), L.Dense, L.Flatten, L.Dropout,
                                    L.BatchNormalization))
    x = np.random.default_rng(4).normal(size=(13, 2, 3)).astype(np.float32)
    theirs.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    theirs.fit(x, np.arange(13) % 3, epochs=1, verbose=0)  # moving statistics away from 0 and 1
    ours = model_from_json(theirs.to_json())
    assert [type(la).__name__ for la in ours.layers] == ["Flatten", "Dense", "Dropout", "BatchNormalization", "Dense"]
    assert ours.get_layer(index=3).momentum == pytest.approx(0.9)
    ours.build()
    ours.set_weights([keras.ops.convert_to_numpy(w) for w in theirs.get_weights()])
    np.testing.assert_allclose(ours.predict(x, verbose=0), keras.ops.convert_to_numpy(theirs.predict(x, verbose=0)),
                               rtol=1e-5, atol=TOL)
    functional_in = keras.Input((4,))
    functional = keras.Model(functional_in, L.Dense(2, activation="softmax")(L.Dense(3)(functional_in)))
    assert [type(la).__name__ for la in model_from_json(functional.to_json()).layers][-2:] == ["Dense", "Dense"]


def test_model_from_json_refuses_bad_strings():
    with pytest.raises(TypeError, match="json_string"):
        model_from_json({"class_name": "Sequential"})
    with pytest.raises(ValueError, match="serialized Keras model"):
        model_from_json("[1, 2]")
    with pytest.raises(ValueError, match="nests deeper"):
        model_from_json("[" * 100 + "]" * 100)
    with pytest.raises(ValueError, match="not supported"):
        model_from_json(json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Conv2D", "config": {}}]}}))
    with pytest.raises(ValueError):
        model_from_json(json.dumps({"class_name": "Sequential", "config": {"layers": [
            {"class_name": "Dense", "config": {"units": -3}}]}}))


# ---- save's arguments -------------------------------------------------------------------------------------
def test_save_arguments_as_keras(tmp_path):
    model, _ = pair()
    path = tmp_path / "m.keras"
    save_model(model, path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save(path, overwrite=False)
    model.save_weights(tmp_path / "w.h5", overwrite=True)
    with pytest.raises(FileExistsError, match="overwrite=False"):
        model.save_weights(tmp_path / "w.h5", overwrite=False)
    assert path.read_bytes() == before
    model.save(path, overwrite=True, zipped=True)
    with pytest.raises(NotImplementedError, match="zipped"):
        model.save(tmp_path / "d.keras", zipped=False)
    with pytest.raises(ValueError, match="not supported"):
        model.save(tmp_path / "x.keras", bogus=1)
    with pytest.raises(NotImplementedError, match="include_optimizer"):
        model.save(tmp_path / "x.h5", include_optimizer=False)
    with pytest.raises(NotImplementedError, match="max_shard_size"):
        model.save_weights(tmp_path / "s.weights.h5", max_shard_size=1)
    with pytest.raises(NotImplementedError, match="skip_mismatch"):
        model.load_weights(path, skip_mismatch=True)
    with pytest.raises(ValueError, match="invalid keyword"):
        model.load_weights(path, by_name=True)
    with pytest.raises(TypeError, match="save_model"):
        save_model(object(), tmp_path / "o.keras")
    assert not (tmp_path / "d.keras").exists() and not (tmp_path / "s.weights.h5").exists()


# ---- constructors -----------------------------------------------------------------------------------------
def test_constructors_take_keras_arguments():
    model = Sequential([Input((3,)), Dense(2)], False, "frozen")
    assert model.trainable is False and model.name == "frozen"
    assert Sequential().trainable is True
    with pytest.raises(TypeError):
        Sequential([Dense(2)], True, "n", "numpy")  # backend and dtype are keyword-only
    with pytest.raises(ValueError, match="trainable"):
        Sequential(trainable="yes")
    inputs = Input((3,))
    outputs = Dense(2)(inputs)
    graph = Model(inputs, outputs, "graph", trainable=False, backend="numpy")
    assert graph.name == "graph" and graph.trainable is False
    assert Model(inputs=inputs, outputs=outputs).name == "functional"
    with pytest.raises(TypeError, match="unexpected keyword.*bogus"):
        Model(inputs, outputs, bogus=1)
    with pytest.raises(TypeError, match="multiple values.*inputs"):
        Model(inputs, outputs, inputs=inputs)
    with pytest.raises(TypeError, match="positional"):
        Model(inputs, outputs, "n", True)
    with pytest.raises(TypeError, match="Model\\(name\\)"):
        Model(inputs, outputs, 3)
    with pytest.raises(ValueError, match="trainable"):
        Model(inputs, outputs, trainable=None)


def test_batch_methods_of_a_graph_with_two_inputs_and_outputs():
    from mlp_gpu import layers

    def graph():
        a, b = Input((3,), name="a"), Input((2,), name="b")
        h = layers.Concatenate()([Dense(4, "relu")(a), b])
        model = Model([a, b], [Dense(3, "softmax", name="o1")(h), Dense(1, name="o2")(h)], backend="numpy")
        model.compile(loss=["sparse_categorical_crossentropy", "mse"], optimizer=SGD(0.1),
                      metrics=[["accuracy"], None], seed=0)
        return model

    rng = np.random.default_rng(7)
    xs = (rng.random((20, 3), dtype=np.float32), rng.random((20, 2), dtype=np.float32))
    ys = (np.arange(20) % 3, rng.random((20, 1), dtype=np.float32))
    one, two = graph(), graph()
    logs = one.train_on_batch(xs, ys, return_dict=True)
    assert list(logs) == one.metrics_names == ["loss", "o1_loss", "o2_loss", "o1_accuracy"]  # Keras' order
    history = two.fit(xs, ys, batch_size=20, epochs=1, shuffle=False, verbose=0)
    for key, value in logs.items():
        assert value == pytest.approx(history.history[key][0], rel=1e-6)
    for a, b in zip(one.get_weights(), two.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    assert one.test_on_batch(xs, ys) == pytest.approx(one.evaluate(xs, ys, verbose=0))
    out = one.predict_on_batch(xs)
    assert [o.shape for o in out] == [(20, 3), (20, 1)]
    rec = Recorder()
    batched = one.predict(xs, batch_size=8, callbacks=[rec], verbose=0)
    assert rec.calls[-2] == ("predict_batch_end", 2, [(4, 3), (4, 1)])
    for p, q in zip(batched, out):
        np.testing.assert_allclose(p, q, rtol=1e-6, atol=1e-7)
