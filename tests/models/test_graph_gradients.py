"""Graph backward passes against float64 central differences (NumPy backend): every merge layer,
fan-out, a layer called twice (shared weights) and two weighted outputs."""
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import layers as L
from mlp_gpu.models import packing

EPS = 1e-6
MERGES = {"add": L.Add, "subtract": L.Subtract, "multiply": L.Multiply, "average": L.Average,
          "maximum": L.Maximum, "minimum": L.Minimum, "concatenate": L.Concatenate}


def merged(kind):
    a, b = mlp_gpu.Input((4,), name="a"), mlp_gpu.Input((3,), name="b")
    ha = L.Dense(5, "tanh", name="ha")(a)
    hb = L.Dense(5, "sigmoid", name="hb")(b)
    parts = [ha, hb] if kind == "subtract" else [ha, hb, L.Dense(5, "linear", name="hc")(ha)]
    m = MERGES[kind]()(parts)
    out = L.Dense(3, "softmax", name="out")(m)
    return mlp_gpu.Model([a, b], out, backend="numpy", dtype="float64"), "sparse_categorical_crossentropy", None


def shared():
    x = mlp_gpu.Input((4,), name="x")
    dense = L.Dense(4, "tanh", name="shared")
    h = dense(dense(x))  # the same weights twice in a row, and fan-out of h below
    out = L.Dense(2, name="out")(L.Add()([h, L.Dense(4, "relu", name="side")(h)]))
    return mlp_gpu.Model(x, out, backend="numpy", dtype="float64"), "mse", None


def two_outputs():
    a, b = mlp_gpu.Input((4,), name="a"), mlp_gpu.Input((3,), name="b")
    h = L.Dense(6, "relu", name="h")(b)
    main = L.Dense(3, "softmax", name="main")(L.concatenate([a, h]))
    aux = L.Dense(2, "sigmoid", name="aux")(h)  # h feeds both outputs
    return (mlp_gpu.Model([a, b], [main, aux], backend="numpy", dtype="float64"),
            ["sparse_categorical_crossentropy", "mse"], [0.7, 0.3])


def make(builder, rows=6, seed=0):
    rng = np.random.default_rng(seed)
    model, loss, weights = builder()
    model.compile(loss=loss, loss_weights=weights, optimizer="sgd", seed=seed)
    model.params[...] = rng.uniform(0.2, 1.0, model.params.size) * rng.choice([-1, 1], model.params.size)
    xs = [rng.normal(size=(rows, int(np.prod(t.sample_shape)))) for t in model._graph.inputs]
    ys = [rng.integers(0, u, rows) if (loss if isinstance(loss, str) else loss[k]).startswith("sparse")
          else rng.normal(size=(rows, u)) for k, u in enumerate(model._units)]
    x = packing.pack_inputs(model, tuple(xs) if len(xs) > 1 else xs[0])
    y = packing.pack_targets(model, tuple(ys) if len(ys) > 1 else ys[0])
    ws = model.workspace(rows)
    ws.x[...] = x
    ws.y[...] = y
    return model, ws


def mean_loss(model, ws):
    acc = np.zeros(model.sums_size)
    model.forward(ws.x, ws, logits=True)
    model.loss_and_count(ws, ws.y, acc)
    return acc[0] / ws.rows


def check(model, ws):
    assert model._general  # these run the graph passes, not the Sequential chain
    mean_loss(model, ws)
    model.backward(ws.x, ws)
    analytic = model.grads.copy()
    numeric = np.empty_like(analytic)
    for i in range(model.params.size):
        keep = model.params[i]
        model.params[i] = keep + EPS
        up = mean_loss(model, ws)
        model.params[i] = keep - EPS
        down = mean_loss(model, ws)
        model.params[i] = keep
        numeric[i] = (up - down) / (2 * EPS)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("kind", sorted(MERGES))
def test_merge_layer_gradients(kind):
    check(*make(lambda: merged(kind)))


def test_shared_layer_and_fan_out_gradients():
    model, ws = make(shared)
    assert [layer.name for layer in model.layers].count("shared") == 1  # one layer, one set of weights
    assert model.count_params() == 2 * 20 + 10
    check(model, ws)


def test_two_weighted_outputs_gradients():
    check(*make(two_outputs))
