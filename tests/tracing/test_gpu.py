"""On a GPU: a custom loss trains inside the captured CUDA graph like the NumPy backend, and costs the step
exactly one node, as the built-in mse kernel does (skipped without a GPU)."""
import numpy as np
import pytest

from mlp_gpu import Dense, Input, Sequential

from ..conftest import requires_gpu
from .test_tracing import huber_fn


def _fit(backend, loss):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)).astype(np.float32)
    y = (x[:, :3] * 1.5).astype(np.float32)
    model = Sequential([Input((12,)), Dense(33, "relu"), Dense(3)], backend=backend)
    model.compile(loss=loss, optimizer="sgd", metrics=[huber_fn], seed=2)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    return model, history


@requires_gpu
@pytest.mark.parametrize("gemm", ["kernel", "cublas"])
def test_custom_loss_is_one_node_of_the_captured_step(gemm):
    from mlp_gpu.backend import get_backend

    ref, ref_h = _fit("numpy", huber_fn)
    gpu = get_backend("cupy", graph=True, gemm=gemm)
    model, history = _fit(gpu, huber_fn)
    for got, want in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for key in ref_h:
        np.testing.assert_allclose(history[key], ref_h[key], rtol=1e-4)
    custom = gpu.route
    assert custom["route"] != "eager" and custom["graph_nodes_per_step"] is not None, custom
    builtin = get_backend("cupy", graph=True, gemm=gemm)
    _fit(builtin, "mse")
    assert custom["graph_nodes_per_step"] == builtin.route["graph_nodes_per_step"], (custom, builtin.route)
