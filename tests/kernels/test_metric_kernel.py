"""kernels/metrics.cu (metric_rows) against the NumPy reference backend.metric_sum: run on the CPU by
the host harness, and by CuPy when a GPU is present; and the C codes agree with the Python ones."""
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu.backend.base import METRIC_KINDS
from mlp_gpu.backend.cuda.ops import ACT_CODES, METRIC_CODES
from mlp_gpu.backend.shared_constants import defines

from .test_kernels import SIZES, dev, ref  # noqa: F401 -- the harness and CuPy fixtures

COMMON = Path(__file__).resolve().parents[2] / "kernels" / "common.cuh"


def test_metric_codes_agree_with_the_kernels():
    """The kernels get these numbers only as -D options from shared_constants (test_backend_layout)."""
    text = (COMMON.parent / "metrics.cu").read_text()
    for kind in METRIC_KINDS:
        assert defines()[f"METRIC_{kind.upper()}"] == METRIC_CODES[kind] and f"METRIC_{kind.upper()}" in text
    for act in ("linear", "sigmoid", "softmax"):
        assert defines()[f"ACT_{act.upper()}"] == ACT_CODES[act]


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", METRIC_KINDS)
@pytest.mark.parametrize("activation,k", [("linear", 1), ("linear", 3), ("sigmoid", 4), ("softmax", 10)])
def test_metric_rows(dev, ref, kind, activation, k, n):  # noqa: F811
    rng = np.random.default_rng(n * 31 + k)
    z = (rng.normal(size=(n, k)) * 3).astype(np.float32)
    t = rng.integers(0, 2, (n, k)).astype(np.float32) if kind == "binary_hits" else \
        rng.normal(size=(n, k)).astype(np.float32)
    got, want = np.array([1.0, 2.0, 3.0, 0.5, 7.0]), np.array([1.0, 2.0, 3.0, 0.5, 7.0])  # added to, slot 4
    dev.metric_sum(kind, z, t, got, 4, activation, 0.5)
    ref.metric_sum(kind, z, t, want, 4, activation, 0.5)
    np.testing.assert_array_equal(got[:4], [1.0, 2.0, 3.0, 0.5])  # only its own slot changes
    np.testing.assert_allclose(got[4], want[4], rtol=1e-5)


def test_fit_with_metrics_through_the_kernels_matches_numpy():
    """A whole fit on the CUDA launch logic (host harness): History and evaluate equal NumPy's,
    with the fused losses' logits turned into outputs by the metric kernel."""
    from mlp_gpu import SGD, Dense, Input, Sequential

    from ..harness.host_ops import HostCudaOps

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)).astype(np.float32)
    cases = [("mse", 2, "linear", rng.normal(size=(40, 2)), ["mae", "RootMeanSquaredError", "mse"]),
             ("binary_crossentropy", 3, "sigmoid", rng.integers(0, 2, (40, 3)), ["binary_accuracy", "mae"]),
             ("categorical_crossentropy", 4, "softmax", np.eye(4)[rng.integers(0, 4, 40)],
              ["categorical_accuracy", "mse"])]
    for loss, units, act, y, metrics in cases:
        runs = []
        for backend in ("numpy", HostCudaOps()):
            model = Sequential([Input((6,)), Dense(8, "relu"), Dense(units, act)], backend=backend)
            model.compile(loss=loss, optimizer=SGD(0.1), metrics=metrics, seed=1)
            history = model.fit(x, y, batch_size=8, epochs=2, seed=3, verbose=0, validation_data=(x[:12], y[:12]))
            runs.append((history.history, model.evaluate(x, y)))
        (h_ref, e_ref), (h_dev, e_dev) = runs
        assert list(h_dev) == list(h_ref)
        for key in h_ref:
            np.testing.assert_allclose(h_dev[key], h_ref[key], rtol=1e-4, err_msg=f"{loss} {key}")
        np.testing.assert_allclose(e_dev, e_ref, rtol=1e-4, err_msg=loss)
