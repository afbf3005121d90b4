"""The backend's shape: the interface is abstract, each backend has its own body for every
fused op, and the numbers Python and the kernels share have one source."""
import re
import subprocess

import numpy as np
import pytest

from mlp_gpu.backend import NumpyBackend, kernels
from mlp_gpu.backend.base import FUSED_OPS, Backend
from mlp_gpu.backend.cuda_ops import GEMM_TILE, GRID_Y_MAX, CudaOps, LaunchContractError
from mlp_gpu.backend.shared_constants import ACC, ACT_CODES, ACTIVATIONS, HYPER, HYPER_SIZE, define_options, defines

from .harness.host_ops import HEADER, HostCudaOps, compiler

SHARED_PREFIXES = ("ACT_", "HYPER_", "ACC_", "LT_SCALAR_", "METRIC_")


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
    """Every ACT_/HYPER_/ACC_ name a kernel uses comes from Python; none is #defined in CUDA."""
    text = path.read_text()
    for name in re.findall(r"#define\s+(\w+)", text):
        assert not name.startswith(SHARED_PREFIXES), f"{path.name} defines {name}; it belongs in shared_constants"
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


# The toolbox's kernels (landed last) do not state their launch contracts yet: listed so the gap shows
CONTRACTS_PENDING = {"dropout.cu", "gradients.cu", "normalization.cu"}


@pytest.mark.parametrize("path", [p for p in kernels.kernel_files() if p.name not in CONTRACTS_PENDING],
                         ids=lambda p: p.name)
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
])
def test_launches_check_their_contract(call, message):
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


def test_the_generated_header_matches_the_python_constants():
    """kernels/shared_constants.cuh lets a plain `nvcc file.cu` compile; it must say what Python says."""
    from mlp_gpu.backend import kernels, shared_constants

    assert (kernels.kernel_dir() / "shared_constants.cuh").read_text() == shared_constants.header_text(), \
        "regenerate kernels/shared_constants.cuh from shared_constants.header_text()"
