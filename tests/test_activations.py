"""The activation table, entry by entry: each NumPy forward against Keras 3's own function, each derivative
against central differences of the forward, and each trains the same on the NumPy backend and through the
host harness (the CUDA switch generated from the table). A new entry is covered without a new test."""
import numpy as np
import pytest

from mlp_gpu import SGD, Dense, Input, Sequential, activations

from .conftest import blobs
from .harness.host_ops import HostCudaOps, compiler

ELEMENTWISE = [a.name for a in activations.TABLE if not a.row_wise]
# Away from each entry's kinks (relu's at 0), where the derivative is defined on both sides.
X = np.concatenate([np.linspace(-6, -0.05, 40), np.linspace(0.05, 6, 40)]).reshape(8, 10)


@pytest.fixture(scope="module")
def keras(request):
    mp = pytest.MonkeyPatch()
    mp.setenv("KERAS_BACKEND", "torch")
    request.addfinalizer(mp.undo)
    return pytest.importorskip("keras")


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_forward_is_keras(keras, name):
    ours = activations.get(name)(X.astype(np.float32))
    theirs = keras.ops.convert_to_numpy(keras.activations.get(name)(X.astype(np.float32)))
    np.testing.assert_allclose(ours, theirs, rtol=2e-6, atol=1e-7)


@pytest.mark.parametrize("name", list(activations.ACTIVATIONS))
def test_derivative_is_the_forwards_slope(name):
    entry, h = activations.get(name), 1e-6
    rng = np.random.default_rng(0)
    dy = rng.normal(size=X.shape)
    y = X.copy()
    entry.forward(y)
    got = dy.copy()
    entry.derivative(got, y)

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


def test_get_names_and_refuses():
    assert activations.get(None).name == "linear" and activations.get("relu") is activations.relu
    with pytest.raises(ValueError, match=r"activation: expected one of \['linear', 'relu'"):
        activations.get("no_such")
    with pytest.raises(ValueError, match="activation"):
        Dense(3, activation="no_such")


@pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_trains_the_same_on_numpy_and_through_the_harness(name):
    x, y = blobs(n=40, features=5)
    weights = []
    for backend in ("numpy", HostCudaOps()):
        model = Sequential([Input((5,)), Dense(7, name), Dense(6, name), Dense(3, "softmax")], backend=backend)
        model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), seed=3)
        history = model.fit(x, y, batch_size=8, epochs=2, seed=1, verbose=0)
        weights.append(model.get_weights())
        assert np.isfinite(history.history["loss"]).all()
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(weights[0], _initial(name)))


def _initial(name):
    model = Sequential([Input((5,)), Dense(7, name), Dense(6, name), Dense(3, "softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(0.1), seed=3)
    return model.get_weights()
