"""The backend's shape: the interface is abstract, each backend has its own body for every
fused op, and the numbers Python and the kernels share have one source."""
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from mlp_gpu.backend import NumpyBackend
from mlp_gpu.backend.cuda import kernels
from mlp_gpu.backend.base import FUSED_OPS, Backend
from mlp_gpu.backend.cuda.ops import GEMM_TILE, GRID_Y_MAX, CudaOps, LaunchContractError
from mlp_gpu.backend.cuda import layer_ops as cuda_layer_ops
from mlp_gpu.backend.shared_constants import (ACC, ACT_CODES, ACTIVATIONS, HYPER, HYPER_SIZE, PHILOX, define_options,
                                              defines)

from ..harness.host_ops import HEADER, HostCudaOps, compiler

SHARED_PREFIXES = ("ACT_", "HYPER_", "ACC_", "LT_SCALAR_", "METRIC_", "SCHEDULE_", "PHILOX_", "PERSIST_")


def test_fused_ops_are_the_interface():
    assert {"matmul", "bias_act", "act_backward", "bias_grad", "loss_grad", "gather_rows", "advance",
            "sgd_update", "adam_update"} <= set(FUSED_OPS)


@pytest.mark.parametrize("op", FUSED_OPS)
def test_cuda_ops_override_every_fused_op(op):
    """No NumPy body reaches a GPU backend: CudaOps defines each op itself."""
    assert op in vars(CudaOps), f"CudaOps.{op} is inherited, not a kernel launch"
    assert op in vars(NumpyBackend), f"NumpyBackend.{op} is missing"


def test_cuda_ops_leave_only_the_launch_abstract():
    assert CudaOps.__abstractmethods__ == {"launch"}


def test_a_backend_missing_an_op_cannot_be_made():
    class Partial(Backend):
        def matmul(self, a, b, out, trans_a=False, trans_b=False):
            return out

    with pytest.raises(TypeError, match="abstract"):
        Partial()


def test_defines_cover_every_slot_and_activation():
    d = defines()
    assert [d[f"ACT_{a.upper()}"] for a in ACTIVATIONS] == list(range(len(ACTIVATIONS)))
    assert all(d[f"HYPER_{k.upper()}"] == v for k, v in HYPER.items())
    assert all(d[f"ACC_{k.upper()}"] == v for k, v in ACC.items())
    assert len(set(ACT_CODES.values())) == len(ACTIVATIONS)
    assert max(HYPER.values()) < d["HYPER_SIZE"] and max(ACC.values()) < d["ACC_SIZE"]


@pytest.mark.parametrize("path", kernels.kernel_files() + [kernels.kernel_dir() / "common.cuh"], ids=lambda p: p.name)
def test_kernels_never_spell_a_shared_number(path):
    """Every ACT_/HYPER_/ACC_/SCHEDULE_/PHILOX_... name a kernel uses comes from Python; none is #defined in
    CUDA (nor any other shared name: block shapes, DROPOUT_BITS)."""
    text = path.read_text()
    for name in re.findall(r"#define\s+(\w+)", text):
        assert not name.startswith(SHARED_PREFIXES) and name not in defines(), \
            f"{path.name} defines {name}; it belongs in shared_constants"
    used = {w for w in re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", text) if w.startswith(SHARED_PREFIXES)}
    assert used <= set(defines()), f"{path.name} uses {used - set(defines())}, unknown to shared_constants"


def test_every_elementwise_activation_has_a_kernel_case():
    """Adding an activation to ACTIVATIONS without a CUDA case fails here (softmax has its own kernels)."""
    text = (kernels.kernel_dir() / "activation.cu").read_text()
    for name in ACTIVATIONS:
        if name not in ("linear", "softmax"):
            assert text.count(f"ACT_{name.upper()}") >= 2, f"activation.cu lacks forward/backward for {name}"


@pytest.mark.skipif(compiler() is None, reason="g++ not found")
def test_kernels_compile_with_the_defines_or_the_generated_header(tmp_path):
    """With the options (backend, NVRTC, harness) or without them (a plain nvcc, which then reads the
    generated kernels/shared_constants.cuh): both compile, and the header agrees with the options."""
    src = kernels.kernel_dir() / "optimizer.cu"
    cmd = [compiler(), "-std=c++20", "-fsyntax-only", "-include", str(HEADER), "-x", "c++", str(src)]
    bare = subprocess.run(cmd, capture_output=True, text=True)
    assert bare.returncode == 0, bare.stderr
    ok = subprocess.run(cmd[:1] + list(define_options()) + cmd[1:], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_nvrtc_program_carries_the_defines():
    code, options = kernels.nvrtc_program(kernels.kernel_index()["adam_update"])
    assert "#include" not in code and set(define_options()) <= set(options)
    assert np.all([opt.startswith(("-D", "--std")) for opt in options])


@pytest.mark.parametrize("path", kernels.kernel_files(), ids=lambda p: p.name)
def test_every_entry_point_states_its_launch_contract(path):
    """The comment right above each extern "C" kernel says how to launch it."""
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith('extern "C" __global__'):
            above = []
            for prev in reversed(lines[:i]):
                if not prev.startswith("//"):
                    break
                above.append(prev)
            assert any("Launch" in c for c in above), f"{path.name}: no launch contract above line {i + 1}"


def F32(shape):
    return np.zeros(shape, np.float32)


class Refused(HostCudaOps):
    """Harness ops that record a launch instead of running it: the checks come before the launch."""

    def launch(self, name, grid, block, args):
        self.launches.append((name, grid, block))


@pytest.mark.parametrize("call,message", [
    (lambda be: be.bias_act(np.zeros((4, 6), np.float32)[:, ::2], np.zeros(3, np.float32), "relu"),
     "z must be a C-contiguous float32 array"),
    (lambda be: be.bias_act(np.zeros((4, 3), np.float32), np.zeros(4, np.float32), "relu"), r"b .*shape \(3,\)"),
    (lambda be: be.bias_grad(np.zeros((4, 3), np.float64), np.zeros(3, np.float32)), "dz must be .* float32"),
    (lambda be: be.loss_grad("softmax_xent_sparse", np.zeros((4, 3), np.float32), np.zeros(4, np.int32),
                             np.zeros((4, 3), np.float32), np.zeros(2)), r"acc needs at least 3 slots"),
    (lambda be: be.loss_grad("softmax_xent_sparse", np.zeros((4, 3), np.float32), np.zeros(4, np.int64),
                             np.zeros((4, 3), np.float32), np.zeros(3)), "target must be .* int32"),
    (lambda be: be.sgd_update(np.zeros(5, np.float32), np.zeros(4, np.float32), None,
                              np.zeros(HYPER_SIZE, np.float32)),
     r"grads .*shape \(5,\)"),
    (lambda be: be.matmul(np.zeros((GEMM_TILE * GRID_Y_MAX + 1, 1), np.float32), np.zeros((1, 1), np.float32),
                          np.zeros((GEMM_TILE * GRID_Y_MAX + 1, 1), np.float32)), "gridDim.y"),
    (lambda be: be.gather_rows(np.zeros((5, 2), np.uint8), np.arange(5), np.zeros(1, np.int64),
                               np.zeros((6, 2), np.float32)), "batch of 6 rows"),
    # the toolbox kernels (kernels/dropout.cu, normalization.cu, gradients.cu, optimizer.cu)
    (lambda be: be.dropout(F32((4, 3)), F32((4, 3)), F32((4, 2)), np.zeros(1, np.int64), 7, 0.2),
     "mask must be .* of 12 elements"),
    (lambda be: be.dropout(F32((4, 3)), F32((4, 3)), F32((4, 3)), np.zeros(1, np.int32), 7, 0.2),
     r"counter must be a C-contiguous int64 array of shape \(1,\)"),
    (lambda be: be.dropout_backward(F32((4, 6))[:, ::2], F32((4, 3)), F32((4, 3))), "dy must be .*not contiguous"),
    (lambda be: be.philox_blocks(np.zeros(6, np.uint32), np.zeros(6, np.uint32), (1, 2)), "whole Philox blocks"),
    (lambda be: be.batchnorm_train(F32((4, 3)), F32((4, 3)), F32(4), None, F32(3), F32(3), F32(3), F32(3), 0.9, 1e-3),
     r"gamma .*shape \(3,\)"),
    (lambda be: be.batchnorm_backward(F32((4, 3)), F32((4, 3)), None, F32(3), F32(3), None, None,
                                      np.zeros((4, 3))), "dx must be .* float32"),
    (lambda be: be.batchnorm_train(F32((4, 0)), F32((4, 0)), None, None, F32(0), F32(0), F32(0), F32(0), 0.9, 1e-3),
     "at least one column"),
    (lambda be: be.batchnorm_infer(F32((4, 3)), F32((4, 3)), None, None, F32(3), F32(2), 1e-3),
     r"moving_var .*shape \(3,\)"),
    (lambda be: be.normalize(F32((4, 3)), F32((3, 4)), F32(3), F32(3)), r"out .*shape \(4, 3\)"),
    (lambda be: be.regularize(F32(5), None, 0.1, 0.1, np.zeros(2), 4), "acc needs at least 3 slots"),
    (lambda be: be.regularize(F32(5), F32(4), 0.1, 0.1, None, 0), "g must be .* of 5 elements"),
    (lambda be: be.clip_by_value(np.zeros(5), 0.5), "g must be .* float32"),
    (lambda be: be.clip_by_norm(F32(5), np.array([0, 5], np.int32), 1.0), "segments must be .* int64"),
    (lambda be: be.clip_by_norm(F32(5), np.array([5], np.int64), 1.0), "at least one segment"),
    (lambda be: be.optimizer_prepare(F32(HYPER_SIZE), F32(8), False), "table must be .* float64"),
    (lambda be: be.optimizer_prepare(F32(HYPER_SIZE - 1), None, True), r"hyper .*shape \(16,\)"),
    (lambda be: be.rmsprop_update(F32(5), F32(5), F32(4), None, None, F32(HYPER_SIZE)), r"velocity .*shape \(5,\)"),
    (lambda be: be.adagrad_update(F32(5), F32(5), np.zeros(5), F32(HYPER_SIZE)), "accumulator must be .* float32"),
    (lambda be: be.nadam_update(F32(5), F32(6), F32(5), F32(5), F32(HYPER_SIZE)), r"grads .*shape \(5,\)"),
])
def test_launches_check_their_contract(call, message):
    _assert_refused(call, message)


def _assert_refused(call, message):
    """call(harness ops) raises LaunchContractError matching message, and launches nothing."""
    be = Refused()
    with pytest.raises(LaunchContractError, match=message):
        call(be)
    assert be.launches == []


def test_loss_launch_is_whole_warps_covering_every_row():
    be = Refused()
    for n in (1, 31, 33, 1000):
        z = np.zeros((n, 3), np.float32)
        be.loss_grad("mse", z, z.copy(), z.copy(), np.zeros(3))
        name, grid, block = be.launches[-1]
        assert block[0] % 32 == 0 and grid[0] * block[0] >= n and len(grid) == 1


@pytest.mark.parametrize("constant,value,call,message", [
    ("REDUCE_BLOCK", 384, lambda be: be.regularize(F32(5), F32(5), 0.1, 0.1, None, 0), "power of two"),
    ("REDUCE_BLOCK", 2048, lambda be: be.clip_by_norm(F32(5), np.array([0, 5], np.int64), 1.0), "at most 1024"),
    ("COLUMN_ROWS", 40, lambda be: be.batchnorm_backward(F32((4, 3)), F32((4, 3)), None, F32(3), F32(3), None, None,
                                                        F32((4, 3))), "at most 1024"),
])
def test_toolbox_block_shapes_are_checked(monkeypatch, constant, value, call, message):
    """The reducing kernels' tree sum needs a power-of-two block, the column kernels a legal block: a
    shared_constants edit that breaks either is refused at launch, not run."""
    monkeypatch.setattr(cuda_layer_ops, constant, value)
    _assert_refused(call, message)


def test_toolbox_launches_follow_their_contracts():
    """Column launches cover every column with (32, COLUMN_ROWS) blocks; clip_by_norm runs a block a segment."""
    be = Refused()
    for k in (1, 31, 33, 1000):
        x = F32((5, k))
        be.batchnorm_train(x, x.copy(), None, None, F32(k), F32(k), F32(k), F32(k), 0.9, 1e-3)
        be.batchnorm_backward(x, x.copy(), None, F32(k), F32(k), None, None, x.copy())
        for name, grid, block in be.launches[-2:]:
            assert block == (32, defines()["COLUMN_ROWS"]) and grid[0] * 32 >= k > (grid[0] - 1) * 32, name
    be.clip_by_norm(F32(9), np.array([0, 2, 2, 9], np.int64), 1.0)
    assert be.launches[-1] == ("clip_by_norm", (3,), (defines()["REDUCE_BLOCK"],))


def test_python_spells_no_shared_number_outside_shared_constants():
    """The Philox words are typed once, in shared_constants.py; every Python user imports them."""
    import mlp_gpu

    root = Path(mlp_gpu.__file__).parent
    spellings = [f"{v:#x}" for v in PHILOX.values()] + [str(v) for v in PHILOX.values()]
    for path in root.rglob("*.py"):
        if path.name != "shared_constants.py":
            text = path.read_text().lower()
            assert not [s for s in spellings if s in text], f"{path} spells a Philox constant"
    assert all(f"{v:#x}" in (root / "backend" / "shared_constants.py").read_text().lower() for v in PHILOX.values())


def test_the_generated_header_matches_the_python_constants():
    """kernels/shared_constants.cuh lets a plain `nvcc file.cu` compile; it must say what Python says."""
    from mlp_gpu.backend.cuda import kernels
    from mlp_gpu.backend import shared_constants

    assert (kernels.kernel_dir() / "shared_constants.cuh").read_text() == shared_constants.header_text(), \
        "regenerate kernels/shared_constants.cuh from shared_constants.header_text()"
