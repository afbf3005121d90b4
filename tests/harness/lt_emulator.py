"""What cublasLtMatmul computes, on flat host buffers read column-major: the test oracle for the
argument mapping of every cuBLASLt call the lt route makes (mlp_gpu/backend/step_plan.py).

D = epilogue(alpha op(A) op(B) + beta C) with C = D, alpha and beta read from the device scalars
(pointer mode DEVICE). Epilogues: "relu_aux" stores relu(D) and a bit-mask of D > 0 (one bit a row of D,
aux_ld bits a column); "drelu" multiplies D by the bits of such a mask.
"""
from __future__ import annotations

import numpy as np

from mlp_gpu.backend.base import StepRunner
from mlp_gpu.backend.cuda.fused_step import FusedStep
from mlp_gpu.backend.cuda.step_plan import SCALARS

from .host_ops import HostCudaOps


def column_major(array, rows, cols, ld):
    """The (rows x cols) column-major matrix with leading dimension ld over array's memory."""
    flat = array.reshape(-1)
    assert ld >= rows, f"leading dimension {ld} < rows {rows}"
    assert (cols - 1) * ld + rows <= flat.size, "cuBLASLt would read outside the buffer"
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))


def lt_matmul(g, arrays) -> None:
    for name in (g.a, g.b, g.d):
        assert arrays[name].flags.c_contiguous and arrays[name].dtype == np.float32, name
    a = column_major(arrays[g.a], *((g.k, g.m) if g.trans_a else (g.m, g.k)), g.lda)
    b = column_major(arrays[g.b], *((g.n, g.k) if g.trans_b else (g.k, g.n)), g.ldb)
    a, b = (a.T if g.trans_a else a), (b.T if g.trans_b else b)
    d = column_major(arrays[g.d], g.m, g.n, g.ldd)
    scalars = arrays["scalars"]
    alpha, beta = float(scalars[SCALARS[g.alpha]]), float(scalars[SCALARS[g.beta]])
    out = alpha * (a.astype(np.float64) @ b)
    if beta != 0:  # cuBLAS does not read C when beta is 0
        out += beta * d
    if g.epilogue != "default":
        aux = arrays[g.aux]
        assert aux.dtype == np.uint8 and aux.shape == (g.n, g.aux_ld // 8) and g.aux_ld >= g.m, "aux layout"
        if g.epilogue == "relu_aux":
            mask = out > 0
            aux[...] = 0
            aux[:, :-(-g.m // 8)] = np.packbits(mask.T, axis=1, bitorder="little")
            out = np.where(mask, out, 0.0)
        elif g.epilogue == "drelu":
            out *= np.unpackbits(aux, axis=1, bitorder="little")[:, :g.m].T
        else:
            raise AssertionError(f"unknown epilogue {g.epilogue!r}")
    d[...] = out


class HostLtOps(HostCudaOps):
    """The host harness plus cuBLASLt emulated: runs the lt route's FusedStep on the CPU.

    ``make_runner`` does what CupyBackend's does on the lt route, minus the graph: a runner of up to
    ``steps_per_graph`` fused steps per call, where replaying one graph of n steps = n fused steps.
    """

    name = "host-cuda-lt"

    def __init__(self, steps_per_graph: int = 1):
        super().__init__()
        self.steps_per_graph = steps_per_graph

    def make_runner(self, step, rows, max_steps=None, model=None, data=None, acc=None):
        return StepRunner(FusedStep(self, model, data, acc, rows), self.steps_per_graph)

    def prepare_lt(self, gemm, arrays):
        def run():
            self.launches.append("cublasLtMatmul")
            lt_matmul(gemm, arrays)
        return run
