"""Backward passes against float64 central differences, on the NumPy backend."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential

EPS = 1e-6
CASES = [  # (hidden activation, output activation, loss)
    ("relu", "softmax", "sparse_categorical_crossentropy"),
    ("tanh", "softmax", "categorical_crossentropy"),
    ("sigmoid", "sigmoid", "binary_crossentropy"),
    ("linear", "linear", "mse"),
    ("tanh", "softmax", "mse"),       # softmax backward outside the fused loss
    ("sigmoid", "relu", "mse"),
    ("relu", "tanh", "mse"),
]


def make_case(hidden, output, loss, rows=7, seed=0):
    rng = np.random.default_rng(seed)
    units = 1 if loss == "binary_crossentropy" else 3
    model = Sequential([Input((5,)), Dense(4, hidden), Dense(units, output)], backend="numpy", dtype="float64")
    model.compile(loss=loss, optimizer="sgd", metrics=["accuracy"], seed=seed)
    # Move parameters away from zero so relu kinks are not straddled by the differences.
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    x = rng.normal(size=(rows, 5))
    if loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, units, rows).astype(np.int32)
    elif loss == "categorical_crossentropy":
        y = rng.dirichlet(np.ones(units), rows)  # soft targets exercise the general formula
    elif loss == "binary_crossentropy":
        y = rng.integers(0, 2, (rows, 1)).astype(np.float64)
    else:
        y = rng.normal(size=(rows, units))
    return model, x, y


def mean_loss(model, x, y, ws):
    acc = np.zeros(2)
    model.forward(x, ws, logits=True)
    model.loss_and_count(ws, y, acc)
    return acc[0] / x.shape[0]


@pytest.mark.parametrize("hidden,output,loss", CASES)
def test_parameter_gradients_match_finite_differences(hidden, output, loss):
    model, x, y = make_case(hidden, output, loss)
    ws = model.workspace(x.shape[0])
    mean_loss(model, x, y, ws)
    model.backward(x, ws)
    analytic = model.grads.copy()
    numeric = np.empty_like(analytic)
    for i in range(model.params.size):
        keep = model.params[i]
        model.params[i] = keep + EPS
        up = mean_loss(model, x, y, ws)
        model.params[i] = keep - EPS
        down = mean_loss(model, x, y, ws)
        model.params[i] = keep
        numeric[i] = (up - down) / (2 * EPS)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("hidden,output,loss", CASES[:4])
def test_input_gradient_matches_finite_differences(hidden, output, loss):
    """dL/dx through the first layer, which the trainer skips but deeper stacks rely on."""
    model, x, y = make_case(hidden, output, loss)
    ws = model.workspace(x.shape[0])
    mean_loss(model, x, y, ws)
    model.backward(x, ws)
    dx = ws.dz[0] @ model.dense_layers[0].kernel.T
    numeric = np.empty_like(x)
    for idx in np.ndindex(*x.shape):
        keep = x[idx]
        x[idx] = keep + EPS
        up = mean_loss(model, x, y, ws)
        x[idx] = keep - EPS
        down = mean_loss(model, x, y, ws)
        x[idx] = keep
        numeric[idx] = (up - down) / (2 * EPS)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-8)


def test_softmax_xent_is_stable_for_huge_logits(numpy_backend):
    z = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]], np.float32)
    dz = np.empty_like(z)
    acc = np.zeros(2)
    numpy_backend.loss_grad("softmax_xent_sparse", z, np.array([0, 2], np.int32), dz, acc)
    assert np.isfinite(acc).all() and np.isfinite(dz).all()
    np.testing.assert_allclose(acc[0], np.log(3.0), rtol=1e-6)  # first row contributes ~0
