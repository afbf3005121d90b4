"""Weight constraints: Keras' formulas, configs and names; applied after each update in fit (the general
step; the fused routes step aside and say why), equal to Keras' weights after one SGD step."""
import inspect

import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential, constraints, load_model


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


W = np.random.default_rng(0).normal(size=(7, 5)).astype(np.float32) * np.array([0.01, 0.3, 1, 3, 30], np.float32)
CASES = [  # (class name, arguments): norms below, inside and above the bounds, on both axes
    ("MaxNorm", {}), ("MaxNorm", {"max_value": 1.5, "axis": 1}), ("NonNeg", {}), ("UnitNorm", {}),
    ("UnitNorm", {"axis": [0, 1]}), ("MinMaxNorm", {}),
    ("MinMaxNorm", {"min_value": 0.5, "max_value": 4.0, "rate": 0.3}),
    ("MinMaxNorm", {"min_value": 1.0, "max_value": 2.0, "axis": 1}),
]


@pytest.mark.parametrize("name,kwargs", CASES)
def test_formulas_and_configs_are_keras(keras, name, kwargs):
    ours, theirs = getattr(constraints, name)(**kwargs), getattr(keras.constraints, name)(**kwargs)
    np.testing.assert_allclose(ours(W), keras.ops.convert_to_numpy(theirs(W)), rtol=2e-6, atol=1e-7)
    assert ours.get_config() == theirs.get_config()
    assert constraints.serialize(ours) == keras.constraints.serialize(theirs)
    again = constraints.deserialize(keras.constraints.serialize(theirs))
    assert type(again) is type(ours) and again.get_config() == ours.get_config()


def test_signatures_names_and_get_are_keras(keras):
    for name in ("Constraint", "MaxNorm", "NonNeg", "UnitNorm", "MinMaxNorm"):
        assert inspect.signature(getattr(constraints, name)) == inspect.signature(getattr(keras.constraints, name))
    for alias, cls in (("max_norm", "MaxNorm"), ("non_neg", "NonNeg"), ("unit_norm", "UnitNorm"),
                       ("min_max_norm", "MinMaxNorm")):
        assert getattr(constraints, alias) is getattr(constraints, cls)
        assert type(constraints.get(alias)).__name__ == type(keras.constraints.get(alias)).__name__ == cls
        assert type(constraints.get(cls)).__name__ == cls
    assert constraints.get(None) is None and isinstance(constraints.get(constraints.NonNeg), constraints.NonNeg)
    assert constraints.serialize(None) is None


@pytest.mark.parametrize("call,pattern", [
    (lambda: constraints.get("clip"), "constraint: expected one of"),
    (lambda: constraints.get(3), "constraint: expected None, a Constraint"),
    (lambda: constraints.MaxNorm(max_value=-1), r"MaxNorm\(max_value\)"),
    (lambda: constraints.MaxNorm(axis="0"), r"MaxNorm\(axis\): expected an int"),
    (lambda: constraints.MinMaxNorm(min_value=2.0, max_value=1.0), r"MinMaxNorm\(max_value\)"),
    (lambda: constraints.deserialize({"class_name": "Nope", "config": {}}), "unknown class_name 'Nope'"),
    (lambda: constraints.deserialize({"class_name": "MaxNorm", "config": {"bad": 1}}), "constraint config for MaxNorm"),
    (lambda: Dense(2, kernel_constraint="l2"), "constraint: expected one of"),
])
def test_bad_arguments_name_themselves(call, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        call()


def data(rows=48, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, 6)).astype(np.float32) * 3, rng.integers(0, 3, rows).astype(np.int32)


def test_fit_keeps_the_weights_constrained_and_says_why_the_fused_step_steps_aside():
    x, y = data()
    model = Sequential([Input((6,)), Dense(8, "relu", kernel_constraint=constraints.MaxNorm(0.5)),
                        Dense(3, "softmax", bias_constraint="non_neg")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    model.layers[1].set_weights([model.layers[1].get_weights()[0], np.array([-1.0, 0.5, 2.0], np.float32)])
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=2)
    assert "weight constraint" in model.backend.route["reason"]  # the fused SGD step would skip the projection
    norms = np.linalg.norm(model.layers[0].kernel, axis=0)
    assert norms.max() <= 0.5 + 1e-6 and norms.max() > 0.4     # the bound is met, and it bit
    assert (model.layers[1].bias >= 0).all()
    assert model.layers[0].get_config()["kernel_constraint"]["class_name"] == "MaxNorm"


class Halve(constraints.Constraint):
    """A user's constraint written Keras' way (``__call__`` only): run on a host copy."""

    def __call__(self, w):
        return np.asarray(w) * 0.5


def test_a_users_call_constraint_runs_after_each_update():
    x, y = np.zeros((8, 6), np.float32), data(rows=8)[1]  # zero inputs: the kernel's gradient is zero
    model = Sequential([Input((6,)), Dense(3, "softmax", kernel_constraint=Halve())], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    before = model.layers[0].get_weights()[0]
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)  # two steps that only the constraint moves: halved twice
    np.testing.assert_allclose(model.layers[0].get_weights()[0], before * 0.25, rtol=1e-6)


@pytest.mark.parametrize("kernel_c,bias_c", [
    ({"class_name": "MaxNorm", "config": {"max_value": 0.3, "axis": 0}}, {"class_name": "NonNeg", "config": {}}),
    ({"class_name": "UnitNorm", "config": {"axis": 0}}, None),
    ({"class_name": "MinMaxNorm", "config": {"min_value": 0.5, "max_value": 0.6, "rate": 0.5, "axis": 0}},
     {"class_name": "MaxNorm", "config": {"max_value": 0.05, "axis": 0}}),
])
def test_one_sgd_step_equals_keras(keras, kernel_c, bias_c):
    x, y = data(rows=16)
    rng = np.random.default_rng(5)
    kernel = rng.normal(size=(6, 4)).astype(np.float32)
    bias = rng.normal(size=(4,)).astype(np.float32)
    ours = Sequential([Input((6,)), Dense(4, "softmax", kernel_constraint=constraints.get(kernel_c),
                                          bias_constraint=constraints.get(bias_c))], backend="numpy")
    ours.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    ours.set_weights([kernel, bias])
    ours.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    theirs = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, "softmax",
                                                                     kernel_constraint=keras.constraints.get(kernel_c),
                                                                     bias_constraint=keras.constraints.get(bias_c))])
    theirs.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.01))
    theirs.set_weights([kernel, bias])
    theirs.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(ours.get_weights()[0], kernel, atol=1e-3)  # the step (and its projection) moved it


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_constraints_survive_save_and_load(tmp_path, suffix):
    model = Sequential([Input((6,)), Dense(4, "relu", kernel_constraint=constraints.MinMaxNorm(0.1, 0.7, 0.5)),
                        Dense(3, "softmax", bias_constraint=constraints.NonNeg())], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", seed=0)
    model.save(tmp_path / f"m{suffix}")
    back = load_model(tmp_path / f"m{suffix}")
    hidden, out = back.layers
    assert isinstance(hidden.kernel_constraint, constraints.MinMaxNorm) and hidden.bias_constraint is None
    assert hidden.kernel_constraint.get_config() == model.layers[0].kernel_constraint.get_config()
    assert isinstance(out.bias_constraint, constraints.NonNeg) and out.kernel_constraint is None
