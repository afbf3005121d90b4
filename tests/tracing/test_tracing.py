"""Traced functions: the recorded graph against NumPy, its gradient against finite differences, the
generated kernel on the host harness against the NumPy evaluation, nvcc and NVRTC on its source, and
the refusals of what cannot be traced."""
import shutil
import subprocess

import numpy as np
import pytest

from mlp_gpu import ops
from mlp_gpu.backend.cuda import kernels
from mlp_gpu.backend.numpy.backend import NumpyBackend
from mlp_gpu.backend.shared_constants import define_options
from mlp_gpu.tracing import TraceError, trace_map, trace_rows

from ..harness import host_ops, nvrtc

NVCC = shutil.which("nvcc")


def huber_fn(y_true, y_pred):  # Géron, chapter 12, with tf replaced by mlp_gpu.ops
    error = y_true - y_pred
    is_small = ops.abs(error) < 1
    return ops.where(is_small, ops.square(error) / 2, ops.abs(error) - 0.5)


def row_mix(y_true, y_pred):  # every op family: reductions with and without keepdims, ties, clip, where
    d = ops.clip(y_pred, -1.5, 2.0) - y_true
    m = ops.max(ops.maximum(y_pred, 0.25), axis=-1, keepdims=True)
    s = ops.softplus(y_pred) * ops.sigmoid(y_true) + ops.tanh(d) * ops.exp(-ops.square(y_pred))
    r = ops.mean(ops.log1p(ops.square(d)) + s / (1.0 + m), axis=-1)
    return r + 0.1 * ops.min(ops.sqrt(ops.abs(y_pred) + 1.0), axis=-1) + ops.sum(ops.minimum(d, 0.0) ** 2, axis=-1)


def my_softplus(z):  # Géron's custom activation
    return ops.log(ops.exp(z) + 1.0)


def _loss_arrays(n, k, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    t = rng.normal(size=(n, k)).astype(dtype)
    z = (rng.normal(size=(n, k)) * 2).astype(dtype)
    z[0, 0] = 0.25  # a tie of maximum(y_pred, 0.25)
    return t, z


def _run_loss(backend, program, t, z, grad_scale):
    acc = np.zeros(4)
    dz = np.zeros_like(z)
    backend.run_traced(program, {"t": t, "z": z, "dz": dz}, acc, 0, 1.0, {"grad_scale": grad_scale})
    return acc[0], dz


def test_ops_compute_on_concrete_arrays_as_numpy():
    x = np.array([[-2.0, 0.5, 3.0]])
    np.testing.assert_allclose(huber_fn(np.zeros_like(x), x), [[1.5, 0.125, 2.5]])
    np.testing.assert_allclose(ops.softplus(x), np.log1p(np.exp(x)))
    np.testing.assert_allclose(ops.sigmoid(x), 1 / (1 + np.exp(-x)))
    assert ops.mean(x, axis=-1, keepdims=True).shape == (1, 1)


@pytest.mark.parametrize("fn", [huber_fn, row_mix])
def test_traced_loss_matches_numpy_and_finite_differences(fn):
    n, k = 7, 3
    t, z = _loss_arrays(n, k)
    program = trace_rows(fn, k, fn.__name__)
    be = NumpyBackend()
    total, dz = _run_loss(be, program, t, z, 1.0 / n)
    values = np.asarray(fn(t, z))
    expected = (values.mean(axis=-1) if values.ndim == 2 else values).sum()
    assert total == pytest.approx(expected, rel=1e-12)
    numeric = np.zeros_like(z)
    eps = 1e-6
    for i in range(n):
        for j in range(k):
            zp, zm = z.copy(), z.copy()
            zp[i, j] += eps
            zm[i, j] -= eps
            numeric[i, j] = (_run_loss(be, program, t, zp, 1.0)[0] - _run_loss(be, program, t, zm, 1.0)[0]) / (2 * eps)
    np.testing.assert_allclose(dz, numeric / n, atol=1e-7)


def test_lambda_gradient_matches_finite_differences():
    forward, backward, cols = trace_map(my_softplus, 4, "my_softplus")
    assert cols == 4
    be = NumpyBackend()
    x = np.random.default_rng(1).normal(size=(5, 4)) * 3
    dy = np.random.default_rng(2).normal(size=(5, 4))
    y, dx = np.empty_like(x), np.empty_like(x)
    be.run_traced(forward, {"x": x, "y": y})
    be.run_traced(backward, {"x": x, "dy": dy, "dx": dx})
    np.testing.assert_allclose(y, np.log1p(np.exp(x)), rtol=1e-12)
    np.testing.assert_allclose(dx, dy / (1 + np.exp(-x)), rtol=1e-10)


def test_numpy_evaluation_reuses_its_buffers():
    program = trace_rows(huber_fn, 3, "huber_fn")
    be = NumpyBackend()
    t, z = _loss_arrays(8, 3, dtype=np.float32)
    _run_loss(be, program, t, z, 0.125)
    (evaluator,) = be._evaluators.values()
    _, _, plan, _, _ = evaluator._buffers[8]
    before = [id(out) for _, out, _ in plan]
    assert len(before) == len(set(before)) > 10
    _run_loss(be, program, t, z, 0.125)
    assert [id(out) for _, out, _ in evaluator._buffers[8][2]] == before and list(evaluator._buffers) == [8]


@pytest.mark.skipif(host_ops.compiler() is None, reason="g++ not found")
@pytest.mark.parametrize("n", [1, 31, 33, 300])
@pytest.mark.parametrize("fn", [huber_fn, row_mix])
def test_generated_kernel_on_the_harness_matches_numpy(fn, n):
    k = 5
    t, z = _loss_arrays(n, k, seed=n, dtype=np.float32)
    program = trace_rows(fn, k, fn.__name__)
    ours, dz_ref = _run_loss(NumpyBackend(), program, t, z, 1.0 / n)
    host = host_ops.HostCudaOps()
    total, dz = _run_loss(host, program, t, z, 1.0 / n)
    assert host.launches == [program.kernel_name]  # forward, row reduction and gradient: one launch
    assert total == pytest.approx(ours, rel=1e-5)
    np.testing.assert_allclose(dz, dz_ref, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(host_ops.compiler() is None, reason="g++ not found")
def test_generated_layer_kernels_on_the_harness_match_numpy():
    forward, backward, _ = trace_map(lambda x: x * 2 + ops.mean(my_softplus(x), axis=-1, keepdims=True), 3, "lam")
    x = np.random.default_rng(3).normal(size=(40, 3)).astype(np.float32)
    dy = np.random.default_rng(4).normal(size=(40, 3)).astype(np.float32)
    outs = []
    for be in (NumpyBackend(), host_ops.HostCudaOps()):
        y, dx = np.empty_like(x), np.empty_like(x)
        be.run_traced(forward, {"x": x, "y": y})
        be.run_traced(backward, {"x": x, "dy": dy, "dx": dx})
        outs.append((y, dx))
    np.testing.assert_allclose(outs[1][0], outs[0][0], rtol=1e-5)
    np.testing.assert_allclose(outs[1][1], outs[0][1], rtol=1e-5)


def _programs():
    return [trace_rows(huber_fn, 1, "huber_fn"), trace_rows(row_mix, 10, "row_mix"),
            trace_rows(row_mix, 4, "row_mix", grad=False), *trace_map(my_softplus, 10, "my_softplus")[:2]]


@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_generated_source_compiles_with_nvrtc_as_the_backend_does(arch):
    for program in _programs():
        kernels.register_generated(program.kernel_name, program.source)
        code, options = kernels.nvrtc_generated(program.kernel_name)
        cubin = nvrtc.compile_program(code, options + kernels.CUPY_NVRTC_OPTIONS + (f"-arch={arch}",), "traced.cu")
        assert program.kernel_name.encode() in cubin


@pytest.mark.skipif(NVCC is None, reason="nvcc not found: CUDA compile check skipped")
def test_generated_source_compiles_with_nvcc(tmp_path):
    for program in _programs():
        path = tmp_path / f"{program.kernel_name}.cu"
        path.write_text(program.source)
        out = subprocess.run([NVCC, "-arch=sm_90", *define_options(), "-ptx", "-o", str(tmp_path / "k.ptx"),
                              str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def _numpy_call(y_true, y_pred):
    return np.abs(y_true - y_pred)


def _python_if(y_true, y_pred):
    if ops.mean(y_pred, axis=-1) > 0:
        return y_pred
    return y_true


def _unknown_op(y_true, y_pred):
    return ops.argmax(y_pred, axis=-1)


def _batch_mean(y_true, y_pred):
    return ops.mean(y_pred)


@pytest.mark.parametrize("fn, op", [(_numpy_call, "numpy.absolute"), (_python_if, "bool"), (_unknown_op, "argmax"),
                                    (_batch_mean, "mean")])
def test_untraceable_functions_are_refused_naming_function_line_and_op(fn, op):
    with pytest.raises(TraceError) as info:
        trace_rows(fn, 3, f"loss {fn.__name__}")
    message = str(info.value)
    assert fn.__name__ in message and op in message and "test_tracing.py:" in message


def test_row_values_meet_arrays_only_with_keepdims():
    with pytest.raises(TraceError, match="keepdims=True"):
        trace_rows(lambda t, z: z - ops.mean(z, axis=-1), 3, "no keepdims")
