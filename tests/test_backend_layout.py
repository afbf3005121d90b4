"""The backend's shape: the interface is abstract, each backend has its own body for every
fused op, and the numbers Python and the kernels share have one source."""
import re
import subprocess

import numpy as np
import pytest

from mlp_gpu.backend import NumpyBackend, kernels
from mlp_gpu.backend.base import FUSED_OPS, Backend
from mlp_gpu.backend.cuda_ops import CudaOps
from mlp_gpu.backend.shared_constants import ACC, ACT_CODES, ACTIVATIONS, HYPER, define_options, defines

from .harness.host_ops import HEADER, compiler

SHARED_PREFIXES = ("ACT_", "HYPER_", "ACC_")


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
def test_kernels_refuse_to_compile_without_the_defines(tmp_path):
    src = kernels.kernel_dir() / "optimizer.cu"
    cmd = [compiler(), "-std=c++20", "-fsyntax-only", "-include", str(HEADER), "-x", "c++", str(src)]
    bare = subprocess.run(cmd, capture_output=True, text=True)
    assert bare.returncode != 0 and "shared_constants" in bare.stderr
    ok = subprocess.run(cmd[:1] + list(define_options()) + cmd[1:], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr


def test_nvrtc_program_carries_the_defines():
    code, options = kernels.nvrtc_program(kernels.kernel_index()["adam_update"])
    assert "#include" not in code and set(define_options()) <= set(options)
    assert np.all([opt.startswith(("-D", "--std")) for opt in options])
