"""The per-kernel development loop (benchmarks/kernels/bench.py) in its no-GPU mode: every kernel
validated against the NumPy reference through the host harness. Timing happens only on a GPU."""
import json

import numpy as np
import pytest

from benchmarks.kernels import bench
from mlp_gpu.backend.cuda import kernels

from ..harness.host_ops import HostCudaOps, compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="g++ not found: the host harness needs it")


def test_validate_only_covers_every_kernel(tmp_path):
    assert bench.main(["--validate-only", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "kernels-host-harness.json").read_text())
    assert result["all_valid"] and result["validate_only"] and "us" not in result["rows"][0]
    # gather_step_* belong to the fused cuBLASLt step, not to a backend op: tests/backend/cuda/test_graph_routes.py
    # checks them through the harness against NumPy
    # persistent_step_* are the persistent route's whole step: tests/backend/cuda/test_persistent_step.py checks them
    missing = {k for k in kernels.kernel_index() if not k.startswith(("gather_step_", "persistent_step_"))}
    missing -= set(result["launched"])
    assert not missing, f"benchmarks/kernels/bench.py has no case for {sorted(missing)}"
    assert (tmp_path / "kernels-host-harness.md").read_text().count("\n| ") == len(result["rows"]) + 1  # and the header


class OffByOne(HostCudaOps):
    def bias_act(self, z, b, act):
        super().bias_act(z, b, act)
        z += np.float32(1e-2)


def test_validation_catches_a_wrong_kernel():
    case = next(c for c in bench.cases(33, small=True) if c.name.startswith("bias_act relu"))
    assert bench.validate(HostCudaOps(), case) < 1e-6
    assert bench.validate(OffByOne(), case) > 1e-3


class NaNWhereFinite(HostCudaOps):
    def clip_by_value(self, g, clipvalue):
        super().clip_by_value(g, clipvalue)
        g[0] = np.nan


def test_validation_catches_a_nan_the_reference_does_not_have():
    case = next(c for c in bench.cases(33, small=True) if c.name.startswith("clip_by_value"))
    assert bench.validate(HostCudaOps(), case) == 0.0
    assert bench.validate(NaNWhereFinite(), case) > 1e-3
