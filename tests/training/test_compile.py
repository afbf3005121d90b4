"""compile as Keras 3 has it: signature, defaults, return value, loss=None, the arguments we cannot honour."""
import inspect
import os

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Model, Sequential, optimizers

os.environ.setdefault("KERAS_BACKEND", "torch")

X = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
Y = (np.arange(20) % 3).astype(np.int64)


def _model():
    return Sequential([Input((4,)), Dense(5, "relu"), Dense(3, "softmax")], backend="numpy")


@pytest.mark.parametrize("cls", [Sequential, Model])
def test_signature_is_keras_with_our_seed_keyword_only_after_it(cls):
    keras = pytest.importorskip("keras")
    ours = list(inspect.signature(cls.compile).parameters.values())
    theirs = list(inspect.signature(keras.Model.compile).parameters.values())
    assert ours[-1].name == "seed" and ours[-1].kind is inspect.Parameter.KEYWORD_ONLY and ours[-1].default is None
    assert [(p.name, p.kind, p.default) for p in ours[:-1]] == [(p.name, p.kind, p.default) for p in theirs]


def test_returns_none_and_defaults_to_rmsprop_as_keras():
    keras = pytest.importorskip("keras")
    model = _model()
    assert model.compile(loss="sparse_categorical_crossentropy") is None
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    twin.compile(loss="mse")
    assert type(model.optimizer).__name__ == type(twin.optimizer).__name__ == "RMSprop"
    assert model.optimizer.get_config()["learning_rate"] == pytest.approx(twin.optimizer.get_config()["learning_rate"])
    model.fit(X, Y, epochs=1, verbose=0)


def test_positional_order_is_optimizer_then_loss():
    model = _model()
    model.compile(optimizers.SGD(0.5), "sparse_categorical_crossentropy")
    assert type(model.optimizer).__name__ == "SGD" and model.loss.name == "sparse_categorical_crossentropy"


def test_no_loss_compiles_and_fit_raises_keras_error():
    keras = pytest.importorskip("keras")
    model = _model()
    model.compile()
    assert model.compiled and model.loss is None
    with pytest.raises(ValueError, match="No loss to compute. Provide a `loss` argument in `compile"):
        model.fit(X, Y, verbose=0)
    with pytest.raises(ValueError, match="No loss to compute"):
        model.evaluate(X, Y)
    assert model.predict(X).shape == (20, 3)  # inference needs no loss
    twin = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    twin.compile()
    with pytest.raises(ValueError, match="No loss to compute. Provide a `loss` argument in `compile"):
        twin.fit(X, Y, verbose=0)


def test_uncompiled_fit_still_says_not_compiled():
    with pytest.raises(RuntimeError, match="not compiled"):
        _model().fit(X, Y, verbose=0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(weighted_metrics=["accuracy"]), r"compile\(weighted_metrics\): not supported"),
    (dict(steps_per_execution=4), r"compile\(steps_per_execution=4\): only 1"),
    (dict(steps_per_execution=0), r"compile\(steps_per_execution\): expected an int >= 1"),
    (dict(run_eagerly="yes"), r"compile\(run_eagerly\): expected True or False"),
    (dict(jit_compile="xla"), r"compile\(jit_compile\): expected True or False"),
    (dict(auto_scale_loss=None), r"compile\(auto_scale_loss\): expected True or False"),
    (dict(loss_weights=0.5), r"compile\(loss_weights\): a model with one output weighs its loss 1"),
])
def test_arguments_we_cannot_honour_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _model().compile(loss="sparse_categorical_crossentropy", **kwargs)


def test_arguments_that_change_no_numbers_are_accepted_and_kept():
    runs = []
    for kwargs in (dict(), dict(jit_compile=True, auto_scale_loss=False, loss_weights=1.0, steps_per_execution=1)):
        model = _model()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", seed=2, **kwargs)
        runs.append(model.fit(X, Y, epochs=2, verbose=0, seed=0).history["loss"])
    assert runs[0] == runs[1] and model.jit_compile is True and model.auto_scale_loss is False
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", run_eagerly=True, jit_compile=True)
    assert model.run_eagerly is True and model.jit_compile is False  # as Keras: eager disables jit
