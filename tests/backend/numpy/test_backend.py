"""The NumPy backend's BLAS paths (SciPy's axpy updates and gemm products) against the formulas."""
import numpy as np
import pytest

from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.base import HYPER, HYPER_SIZE


def _hyper(lr):
    h = np.zeros(HYPER_SIZE, np.float32)
    h[HYPER["lr"]] = lr
    return h


@pytest.mark.parametrize("nesterov", [False, True])
def test_axpy_updates_are_the_formulas(nesterov):
    rng = np.random.default_rng(2)
    w, g, v = (rng.normal(size=1001).astype(np.float32) for _ in range(3))
    h = _hyper(0.05)
    h[HYPER["momentum"]] = 0.9
    want_v = 0.9 * v - 0.05 * g
    want_w = w + 0.9 * want_v - 0.05 * g if nesterov else w + want_v
    NumpyBackend().sgd_update(w, g, v, h, nesterov)
    np.testing.assert_allclose(v, want_v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(w, want_w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, False), (False, True), (True, True)])
def test_matmul_through_blas_is_numpy_matmul(trans_a, trans_b, dtype):
    rng = np.random.default_rng(1)
    m, k, n = 5, 7, 3
    a = rng.normal(size=(k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.normal(size=(n, k) if trans_b else (k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)  # beta = 0: whatever out held does not leak in
    NumpyBackend().matmul(a, b, out, trans_a, trans_b)
    np.testing.assert_allclose(out, (a.T if trans_a else a) @ (b.T if trans_b else b), rtol=1e-5, atol=1e-6)
    strided = np.zeros((m, 2 * n), dtype)[:, ::2]  # not contiguous: NumPy's own matmul
    NumpyBackend().matmul(a, b, strided, trans_a, trans_b)
    np.testing.assert_allclose(strided, out, rtol=1e-5, atol=1e-6)
