"""Against the golden file (tests/golden/make_golden.py, an independent float64 NumPy computation):
the loss, gradients and weights of three SGD steps, on every backend at hand."""
from pathlib import Path

import h5py
import numpy as np
import pytest

import mlp_gpu
from mlp_gpu import SGD, Dense, Input, Sequential
from mlp_gpu.backend import get_backend

from ..conftest import requires_gpu
from ..harness.host_ops import HostCudaOps, compiler

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "reference_steps.h5"
BACKENDS = [pytest.param("numpy"),
            pytest.param("host-harness", marks=pytest.mark.skipif(compiler() is None, reason="no g++")),
            pytest.param("cupy-eager", marks=[pytest.mark.gpu, requires_gpu]),
            pytest.param("cupy-graph", marks=[pytest.mark.gpu, requires_gpu])]


def backend(name):
    return {"numpy": lambda: "numpy", "host-harness": HostCudaOps,
            "cupy-eager": lambda: get_backend("cupy", graph=False),
            "cupy-graph": lambda: get_backend("cupy", graph=True)}[name]()


@pytest.fixture(scope="module")
def golden():
    with h5py.File(GOLDEN, "r") as f:
        return {key: f[key][()] for key in _datasets(f)} | {"lr": float(f.attrs["lr"])}


def _datasets(f):
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def _weights(g, prefix):
    return [g[f"{prefix}/{k}/{part}"] for k in range(3) for part in ("kernel", "bias")]


def model_for(g, name):
    m = Sequential([Input((6,)), Dense(5, "relu"), Dense(4, "relu"), Dense(3, "softmax")], backend=backend(name))
    m.compile(loss="sparse_categorical_crossentropy", optimizer=SGD(g["lr"]), metrics=["accuracy"], seed=0)
    m.set_weights(_weights(g, "initial"))
    return m


@pytest.mark.parametrize("name", BACKENDS)
def test_three_steps_match_golden(golden, name):
    g = golden
    m = model_for(g, name)
    seen = []

    class EveryStep(mlp_gpu.Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append((logs["loss"], self.model.get_weights()))

    m.fit(g["x"].astype(np.float32), g["y"], batch_size=4, epochs=1, shuffle=False, verbose=0,
          callbacks=[EveryStep()])
    assert len(seen) == 3
    sizes = [4, 4, 2]
    for s, (running_loss, weights) in enumerate(seen):
        want = sum(g[f"step{i}/loss"] * sizes[i] for i in range(s + 1)) / sum(sizes[:s + 1])
        assert running_loss == pytest.approx(want, rel=1e-5)
        for got, expected in zip(weights, _weights(g, f"step{s}/after")):
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_first_step_gradients_match_golden(golden):
    g = golden
    m = model_for(g, "numpy")
    ws = m.workspace(4)
    x, y = g["x"][:4].astype(np.float32), g["y"][:4]
    m.forward(x, ws, logits=True)
    m.loss_and_count(ws, y, np.zeros(3))
    m.backward(x, ws)
    got = [t for layer in m.dense_layers for t in (layer.kernel_grad, layer.bias_grad)]
    for a, b in zip(got, _weights(g, "step0/grad")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
