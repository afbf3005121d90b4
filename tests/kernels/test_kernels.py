"""Every kernel three ways: nvcc compiles it; the host harness runs it on the CPU against
the NumPy reference on awkward sizes; CuPy runs the same cases on a GPU when one is present."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from mlp_gpu import activations
from mlp_gpu.backend import NumpyBackend, get_backend
from mlp_gpu.backend.cuda import kernels
from mlp_gpu.backend.base import HYPER, HYPER_SIZE
from mlp_gpu.backend.shared_constants import ACTIVATIONS, define_options

from ..conftest import requires_gpu
from ..harness.host_ops import HostCudaOps, compiler

SIZES = [1, 31, 33, 1000]
KERNEL_FILES = kernels.kernel_files()
NVCC = shutil.which("nvcc")
RESOURCES = {}  # kernel -> (registers, spill bytes), printed at the end of the run by conftest

needs_gxx = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")


class OnDevice:
    """Runs a backend op on copies of host arrays placed on the backend's device, then copies every
    array argument back into the caller's arrays, so one test body serves the harness and CuPy."""

    def __init__(self, backend):
        self.backend = backend

    def __getattr__(self, op):
        be = self.backend

        def call(*args, **kwargs):
            placed = [be.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
            getattr(be, op)(*placed, **kwargs)
            for a, p in zip(args, placed):
                if isinstance(a, np.ndarray):
                    a[...] = be.to_host(p)
        return call


@pytest.fixture(scope="module", params=[
    pytest.param("host", marks=needs_gxx),
    pytest.param("cupy", marks=[pytest.mark.gpu, requires_gpu]),
    pytest.param("cupy-kernel-gemm", marks=[pytest.mark.gpu, requires_gpu])])
def dev(request):
    """The kernels under test: run by the host harness, or by CuPy on a GPU."""
    if request.param == "host":
        return OnDevice(HostCudaOps())
    return OnDevice(get_backend("cupy", graph=False, gemm="cublas" if request.param == "cupy" else "kernel"))


@pytest.fixture(scope="module")
def ref():
    return NumpyBackend()


def test_every_kernel_has_a_layout_comment():
    for path in KERNEL_FILES:
        text = path.read_text()
        assert text.lstrip().startswith("//"), f"{path.name} should open with its layout contract"
        assert "Layout" in text or "row-major" in text, f"{path.name} should state its layout"


def test_kernels_are_self_contained():
    """NVRTC gets no include path and no standard headers: only local includes are allowed."""
    for path in KERNEL_FILES:
        for inc in re.findall(r'#include\s+(\S+)', path.read_text()):
            assert inc.startswith('"'), f"{path.name} includes {inc}; kernels use no standard headers"
        assert "#include" not in kernels.source(path)


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("path", KERNEL_FILES, ids=lambda p: p.name)
def test_nvcc_compiles(path, arch, tmp_path):
    if NVCC is None:
        pytest.skip("nvcc not found: CUDA compile check skipped")
    ptx = subprocess.run([NVCC, f"-arch={arch}", *define_options(), "-ptx", "-o", str(tmp_path / "k.ptx"), str(path)],
                         capture_output=True, text=True)
    assert ptx.returncode == 0, ptx.stderr
    if arch != "sm_90":
        return
    cubin = subprocess.run([NVCC, f"-arch={arch}", *define_options(), "-cubin", "--resource-usage",
                            "-o", str(tmp_path / "k.cubin"), str(path)], capture_output=True, text=True)
    assert cubin.returncode == 0, cubin.stderr
    current = None
    for line in cubin.stderr.splitlines():
        m = re.search(r"Function properties for (\w+)", line) or re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            current = m.group(1)
        m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m and current:
            RESOURCES.setdefault(current, {})["spill_bytes"] = int(m.group(1)) + int(m.group(2))
        m = re.search(r"Used (\d+) registers", line)
        if m and current:
            RESOURCES.setdefault(current, {})["registers"] = int(m.group(1))
    names = kernels.signatures(path.read_text())
    for name in names:
        assert name in RESOURCES, f"no resource usage reported for {name}"
        assert RESOURCES[name].get("spill_bytes", 0) == 0, f"{name} spills registers: {RESOURCES[name]}"


# ---- host-execution parity ----------------------------------------------------------

def _rand(rng, *shape, scale=1.0):
    return (rng.normal(size=shape) * scale).astype(np.float32)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_bias_act_and_backward(dev, ref, n, act):
    rng = np.random.default_rng(n)
    k = 10 if activations.get(act).row_wise else 37
    z, b, dy = _rand(rng, n, k, scale=4), _rand(rng, k), _rand(rng, n, k)
    got, want = z.copy(), z.copy()
    dev.bias_act(got, b, act)
    ref.bias_act(want, b, act)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    # the derivative reads the output, or the input (z + b) for the entries the table marks from_input
    v = z + b if activations.get(act).from_input else want
    got_d, want_d = dy.copy(), dy.copy()
    dev.act_backward(got_d, v, act)
    ref.act_backward(want_d, v, act)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n,k", [(1, 1), (31, 300), (33, 10), (1000, 33)])
def test_bias_grad(dev, ref, n, k):
    dz = _rand(np.random.default_rng(k), n, k)
    got, want = np.empty(k, np.float32), np.empty(k, np.float32)
    dev.bias_grad(dz, got)
    ref.bias_grad(dz, want)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _targets(rng, kind, n, k):
    if kind == "softmax_xent_sparse":
        return rng.integers(0, k, n).astype(np.int32)
    if kind == "softmax_xent":
        return rng.dirichlet(np.ones(k), n).astype(np.float32)
    if kind == "sigmoid_bce":
        return rng.integers(0, 2, (n, k)).astype(np.float32)
    return _rand(rng, n, k)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind,k", [("softmax_xent_sparse", 10), ("softmax_xent", 7), ("sigmoid_bce", 1),
                                    ("sigmoid_bce", 5), ("mse", 1), ("mse", 3)])
def test_loss_grad_and_count(dev, ref, kind, k, n):
    rng = np.random.default_rng(n * 7 + k)
    z, t = _rand(rng, n, k, scale=3), _targets(rng, kind, n, k)
    threshold = 0.5 if kind == "mse" else 0.0
    got_dz, want_dz = np.empty_like(z), np.empty_like(z)
    got_acc, want_acc = np.array([1.5, 2.0, 4.0]), np.array([1.5, 2.0, 4.0])  # kernels add, never overwrite
    dev.loss_grad(kind, z, t, got_dz, got_acc, count=True, threshold=threshold)
    ref.loss_grad(kind, z, t, want_dz, want_acc, count=True, threshold=threshold)
    np.testing.assert_allclose(got_dz, want_dz, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got_acc[0], want_acc[0], rtol=1e-5)
    assert got_acc[1] == want_acc[1]


def test_loss_without_count_leaves_correct_untouched(dev):
    z = np.zeros((5, 3), np.float32)
    acc = np.array([0.0, 9.0, 0.0])
    dev.loss_grad("softmax_xent_sparse", z, np.zeros(5, np.int32), np.empty_like(z), acc)
    assert acc[1] == 9.0 and acc[2] == 0.0 and acc[0] == pytest.approx(5 * np.log(3), rel=1e-6)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.int32])
def test_gather_rows_and_advance(dev, ref, n, dtype):
    rng = np.random.default_rng(n)
    total = n + 5
    src = (rng.integers(0, 256, (total, 13)) if dtype != np.float32 else rng.normal(size=(total, 13))).astype(dtype)
    if dtype == np.int32:
        src = src[:, 0].copy()  # labels: one column
    perm = rng.permutation(total).astype(np.int64)
    out_dtype = np.int32 if dtype == np.int32 else np.float32
    got, want = np.empty((n,) + src.shape[1:], out_dtype), np.empty((n,) + src.shape[1:], out_dtype)
    cursor = np.array([3], np.int64)
    dev.gather_rows(src, perm, cursor, got)
    ref.gather_rows(src, perm, cursor, want)
    np.testing.assert_array_equal(got, want)
    hyper = np.zeros(HYPER_SIZE, np.float32)
    dev.advance(cursor, n, hyper)
    dev.advance(cursor, 2)
    assert cursor[0] == 3 + n + 2 and hyper[HYPER["iterations"]] == 1


def _hyper(**values):
    h = np.zeros(HYPER_SIZE, np.float32)
    for key, value in values.items():
        h[HYPER[key]] = value
    return h


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opt", ["sgd", "momentum", "nesterov", "adam"])
def test_optimizer_updates(dev, ref, opt, size):
    rng = np.random.default_rng(size)
    w, g = _rand(rng, size), _rand(rng, size)
    s1, s2 = _rand(rng, size, scale=0.1), np.abs(_rand(rng, size, scale=0.1))
    hyper = _hyper(lr=0.01, momentum=0.9, beta_1=0.9, beta_2=0.999, epsilon=1e-7, iterations=4)
    got = [a.copy() for a in (w, g, s1, s2)]
    want = [a.copy() for a in (w, g, s1, s2)]
    for be, (pw, pg, ps1, ps2) in ((dev, got), (ref, want)):
        if opt == "sgd":
            be.sgd_update(pw, pg, None, hyper)
        elif opt == "adam":
            be.adam_update(pw, pg, ps1, ps2, hyper)
        else:
            be.sgd_update(pw, pg, ps1, hyper, nesterov=opt == "nesterov")
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6, atol=1e-7)
    if opt != "sgd":
        np.testing.assert_allclose(got[2], want[2], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (31, 33, 17), (33, 31, 65), (7, 100, 3)])
@pytest.mark.parametrize("trans", ["NN", "NT", "TN"])
def test_sgemm_strided(dev, m, n, k, trans):
    rng = np.random.default_rng(m + n + k)
    a = _rand(rng, *((k, m) if trans == "TN" else (m, k)))
    b = _rand(rng, *((n, k) if trans == "NT" else (k, n)))
    out = np.empty((m, n), np.float32)
    dev.matmul(a, b, out, trans_a=trans == "TN", trans_b=trans == "NT")
    want = (a.T if trans == "TN" else a).astype(np.float64) @ (b.T if trans == "NT" else b)
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def _sgemm_column_major(transa, transb, m, n, k, a_buf, lda, b_buf, ldb, ldc):
    """What cuBLAS' sgemm computes, on flat buffers read column-major: C = op(A) op(B), C is m x n."""
    def matrix(buf, rows, cols, ld):
        assert ld >= rows and (cols - 1) * ld + rows <= buf.size, "cuBLAS would read outside the buffer"
        return np.lib.stride_tricks.as_strided(buf, (rows, cols), (buf.itemsize, ld * buf.itemsize))
    a = matrix(a_buf, k, m, lda).T if transa else matrix(a_buf, m, k, lda)
    b = matrix(b_buf, n, k, ldb).T if transb else matrix(b_buf, k, n, ldb)
    c = np.zeros(ldc * n, np.float64)
    matrix(c, m, n, ldc)[...] = a.astype(np.float64) @ b
    return c


@pytest.mark.parametrize("trans", ["NN", "NT", "TN"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (32, 300, 784), (7, 10, 100), (33, 31, 65)])
def test_cublas_argument_mapping(trans, m, n, k):
    """The row-major to column-major mapping the CuPy backend hands cuBLAS, checked on the CPU."""
    from mlp_gpu.backend.cuda.backend import column_major_gemm

    rng = np.random.default_rng(m * n)
    ta, tb = trans == "TN", trans == "NT"
    a = _rand(rng, *((k, m) if ta else (m, k)))
    b = _rand(rng, *((n, k) if tb else (k, n)))
    t_b, t_a, cm, cn, ck, ldb, lda, ldc = column_major_gemm(a.shape, b.shape, (m, n), ta, tb)
    flat = _sgemm_column_major(t_b, t_a, cm, cn, ck, b.ravel(), ldb, a.ravel(), lda, ldc)
    want = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
    np.testing.assert_allclose(flat.reshape(m, n), want, rtol=1e-5, atol=1e-5)
