"""The activation table, entry by entry: each NumPy forward against Keras 3's own function on awkward inputs,
each derivative against central differences of the forward (through the input for the from_input entries),
each trains the same on the NumPy backend and through the host harness (the CUDA switch and row kernels
generated from, or named by, the table). Keras' signatures, parameters, get/serialize/deserialize. A new
entry is covered without a new test."""
import inspect
import logging

import numpy as np
import pytest
from scipy import special

from mlp_gpu import SGD, Dense, Input, Sequential, activations
from mlp_gpu.backend.numpy.fused_step import fused_sgd_unsupported

from .conftest import blobs
from .harness.host_ops import HostCudaOps, compiler

ELEMENTWISE = [a.name for a in activations.TABLE if not a.row_wise]
TRAINED = ELEMENTWISE + ["log_softmax"]  # softmax as a hidden layer is covered by the kernel tests
# Away from each entry's kinks (relu's at 0, relu6's at 6, hard_sigmoid's at +-3).
X = np.concatenate([np.linspace(-5.9, -0.07, 40), np.linspace(0.07, 5.9, 40)]).reshape(8, 10)
# Awkward: large |x| (exp overflows past 88), 0, tiny and negative values.
AWKWARD = np.array([[-100.0, -30.0, -10.0, -3.0, -1e-3, 0.0, 1e-3, 3.0, 10.0, 30.0, 100.0, -0.5]], np.float32)
EXACT_TAIL = {"gelu": 1e-6}  # torch's erf form cancels in float32 below about -4; ours (erfc) does not


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


def theirs(keras, fn, *args, **kwargs):
    return keras.ops.convert_to_numpy(fn(*args, **kwargs))


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
@pytest.mark.parametrize("x", [X.astype(np.float32), AWKWARD], ids=["grid", "awkward"])
def test_forward_is_keras(keras, name, x):
    if name == "exponential":
        x = np.clip(x, -80, 80)  # exp(100) is inf in both; inf - inf would compare as nan
    ours = activations.get(name)(x)
    assert ours.dtype == np.float32 and ours.shape == x.shape
    np.testing.assert_allclose(ours, theirs(keras, keras.activations.get(name), x), rtol=2e-6,
                               atol=EXACT_TAIL.get(name, 1e-7))


def test_gelu_is_exact_in_the_tail():
    x = AWKWARD.astype(np.float64)
    want = 0.5 * x * special.erfc(-x / np.sqrt(2))
    np.testing.assert_allclose(activations.gelu(AWKWARD), want, rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS) + list(activations.ALIASES) + ["get", "serialize",
                                                                                              "deserialize"])
def test_signature_is_keras(keras, name):
    ours, keras_fn = getattr(activations, name), getattr(keras.activations, name)
    assert list(inspect.signature(ours).parameters.values()) == list(inspect.signature(keras_fn).parameters.values())


@pytest.mark.parametrize("kwargs", [dict(negative_slope=0.5), dict(max_value=5.0), dict(max_value=6.0),
                                    dict(threshold=1.0), dict(negative_slope=0.3, max_value=4.0),
                                    dict(negative_slope=0.2, threshold=2.0), dict(max_value=3.0, threshold=1.0),
                                    dict(negative_slope=0.1, max_value=2.0, threshold=0.5)])
def test_relu_parameters_are_keras(keras, kwargs):
    for x in (X.astype(np.float32), AWKWARD):
        np.testing.assert_allclose(activations.relu(x, **kwargs), theirs(keras, keras.activations.relu, x, **kwargs),
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name,kwargs", [("leaky_relu", dict(negative_slope=0.3)),
                                         ("leaky_relu", dict(negative_slope=0.0)),
                                         ("elu", dict(alpha=0.5)), ("elu", dict(alpha=2.0)),
                                         ("gelu", dict(approximate=True)), ("gelu", dict(approximate=False)),
                                         ("softmax", dict(axis=0)), ("softmax", dict(axis=1)),
                                         ("log_softmax", dict(axis=0)), ("log_softmax", dict(axis=-2))])
def test_parameters_are_keras(keras, name, kwargs):
    x = np.concatenate([X, AWKWARD[:, :10] / 4]).astype(np.float32).reshape(3, 3, 10)
    np.testing.assert_allclose(getattr(activations, name)(x, **kwargs),
                               theirs(keras, getattr(keras.activations, name), x, **kwargs), rtol=2e-6, atol=1e-6)


def test_bad_parameters_name_the_argument():
    with pytest.raises(ValueError, match=r"activations.relu\(negative_slope\)"):
        activations.relu(X, negative_slope="0.5")
    with pytest.raises(ValueError, match=r"activations.gelu\(approximate\)"):
        activations.gelu(X, approximate="yes")
    with pytest.raises(ValueError, match=r"activations.softmax\(axis\): expected an int in \[-2, 2\)"):
        activations.softmax(X, axis=2)
    with pytest.raises(TypeError):
        activations.tanh(X, 1.0)  # Keras' tanh takes x alone


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_derivative_is_the_forwards_slope(name):
    entry, h = activations.get(name), 1e-6
    rng = np.random.default_rng(0)
    dy = rng.normal(size=X.shape)
    y = X.copy()
    entry.forward(y)
    got = dy.copy()
    entry.derivative(got, X.copy() if entry.from_input else y)

    def loss(x):
        out = x.copy()
        entry.forward(out)
        return (out * dy).sum()

    want = np.empty_like(X)
    for idx in np.ndindex(X.shape):
        step = np.zeros_like(X)
        step[idx] = h
        want[idx] = (loss(X + step) - loss(X - step)) / (2 * h)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_from_input_marks_exactly_the_entries_whose_output_hides_the_slope():
    assert [a.name for a in activations.TABLE if a.from_input] == ["gelu", "silu", "mish", "hard_silu"]
    # one output, two inputs with different slopes: no derivative through y could be right
    for name in ("gelu", "silu", "mish", "hard_silu"):
        z = np.linspace(-4, 0, 4001)
        y = activations.get(name)(z).astype(np.float64)
        assert np.any(np.diff(np.sign(np.diff(y))) != 0), f"{name} should not be monotonic"


def test_get_serialize_deserialize(keras):
    assert activations.get(None) is activations.linear and activations.get("relu") is activations.relu
    assert activations.get("swish") is activations.silu and activations.get("hard_swish") is activations.hard_silu
    assert activations.swish is activations.silu
    custom = lambda x: x  # noqa: E731
    assert activations.get(custom) is custom
    for name in list(activations.ACTIVATIONS) + list(activations.ALIASES):
        assert activations.serialize(activations.get(name)) == keras.activations.serialize(
            keras.activations.get(name)), name
        # Keras' serialized function object reads back to the same entry
        serialized = keras.saving.serialize_keras_object(keras.activations.get(name))
        assert activations.deserialize(serialized) is activations.get(name)
        assert activations.get(serialized) is activations.get(name)
    assert activations.deserialize("my_act", custom_objects={"my_act": custom}) is custom

    def my_act(x):
        return x
    assert activations.serialize(my_act) == "my_act"


def test_get_and_deserialize_refuse_with_the_names():
    with pytest.raises(ValueError, match=r"activation: expected one of \['linear', 'relu'.*'swish'"):
        activations.get("no_such")
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="no_such")
    with pytest.raises(ValueError, match="activation"):
        activations.get(3)
    with pytest.raises(ValueError, match=r"deserialize\(config\)"):
        activations.deserialize({"class_name": "Dense", "config": {}})
    with pytest.raises(ValueError, match=r"deserialize\(custom_objects\)"):
        activations.deserialize("relu", custom_objects=["relu"])
    with pytest.raises(ValueError, match="cannot serialize"):
        activations.serialize(lambda x: x)


def test_dense_takes_entries_aliases_and_names():
    assert Dense(3, activation=activations.gelu).activation == "gelu"
    assert Dense(3, activation="swish").activation == "silu"
    assert Dense(3, activation=activations.get("hard_swish")).get_config()["activation"] == "hard_silu"


@pytest.mark.parametrize("name", ["gelu", "silu", "mish", "hard_silu"])
def test_fused_steps_refuse_from_input_activations_and_the_fit_still_trains(name, caplog):
    x, y = blobs(n=40, features=5)
    model = Sequential([Input((5,)), Dense(7, name), Dense(3, "softmax")], backend="numpy")
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=3)
    model.build()
    reason = fused_sgd_unsupported(model, 8)
    assert reason and name in reason and "pre-activation" in reason
    with caplog.at_level(logging.INFO, logger="mlp_gpu"):
        history = model.fit(x, y, batch_size=8, epochs=3, seed=1, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("name", TRAINED)
def test_trains_the_same_on_numpy_and_through_the_harness(name):
    x, y = blobs(n=40, features=5)
    x /= np.abs(x).max()  # inputs in [-1, 1]: exponential stays finite through two layers
    weights = []
    for backend in ("numpy", HostCudaOps()):
        model = Sequential([Input((5,)), Dense(7, name), Dense(6, name), Dense(3, "softmax")], backend=backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=3)
        history = model.fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0)
        weights.append(model.get_weights())
        assert np.isfinite(history.history["loss"]).all()
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(weights[0], _initial(name)))


def _initial(name):
    model = Sequential([Input((5,)), Dense(7, name), Dense(6, name), Dense(3, "softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.05), seed=3)
    return model.get_weights()
