"""The fused ops as launches of the kernels in ``kernels/``, whoever runs them.

``CudaOps`` computes each launch (kernel, grid, block, arguments) from array
shapes; a subclass says how to launch. The CuPy backend launches on a GPU; the
test harness (tests/harness) runs the very same launches on the CPU through g++,
so the launch arithmetic and the kernels are checked on machines without a GPU.
Arrays must be C-contiguous float32 (labels int32, permutations int64).
"""
from __future__ import annotations

from abc import abstractmethod

import numpy as np

from ... import activations
from ..base import Backend
from . import kernels
from .layer_ops import CudaLayerOps
from .launch_contract import LaunchContractError  # noqa: F401 -- re-exported
from .launch_contract import WARP, check_array, check_flat, check_int32, require
from ..shared_constants import ACC_SIZE, ACT_CODES, BIAS_GRAD_ROWS, GEMM_TILE, METRIC_CODES

BLOCK = 256          # threads per block for element- and row-wise kernels: whole warps
MAX_BLOCKS = 4096    # grid-stride kernels need no more to fill an H100
GRID_Y_MAX = 65535   # CUDA's limit on gridDim.y (sgemm_strided puts the row tiles there)
_GATHER = {np.dtype(np.uint8): "gather_rows_u8", np.dtype(np.float32): "gather_rows_f32",
           np.dtype(np.int32): "gather_rows_i32"}
_LOSS_KERNELS = {"softmax_xent_sparse": "softmax_xent_sparse", "softmax_xent": "softmax_xent_dense",
                 "sigmoid_bce": "sigmoid_bce", "mse": "mse"}


def _blocks(count, per_block=BLOCK, cap=MAX_BLOCKS):
    return (max(1, min(-(-count // per_block), cap)),)


class CudaOps(CudaLayerOps, Backend):
    """Backend ops as kernel launches; subclasses define ``xp`` and ``launch``.

    Each op checks the preconditions of its kernel's launch contract (the comment above the kernel's
    entry point) before launching, raising :class:`LaunchContractError`.
    """

    BLOCK = BLOCK
    _blocks = staticmethod(_blocks)

    gemm = "kernel"  # "kernel": our sgemm_strided; subclasses may offer "cublas"

    @abstractmethod
    def launch(self, name: str, grid: tuple, block: tuple, args: tuple) -> None:
        """Run kernel ``name`` over grid x block threads with args (arrays and typed NumPy scalars)."""
        raise NotImplementedError

    def _placeholder(self, dtype):
        """A small buffer to pass where a kernel's optional pointer argument is unused."""
        key = "_placeholder_" + np.dtype(dtype).name
        if getattr(self, key, None) is None:
            setattr(self, key, self.zeros(8, dtype))
        return getattr(self, key)

    # ---- dense algebra ------------------------------------------------------
    def matmul(self, a, b, out, trans_a=False, trans_b=False):
        if self.gemm != "kernel":
            return self.cublas_matmul(a, b, out, trans_a, trans_b)
        m, n = out.shape
        k = a.shape[0] if trans_a else a.shape[1]
        name = "sgemm_strided"
        check_array(name, "a", a, (k, m) if trans_a else (m, k))
        check_array(name, "b", b, (n, k) if trans_b else (k, n))
        check_array(name, "out", out)
        check_int32(name, m=m, n=n, k=k)
        grid = (-(-n // GEMM_TILE), -(-m // GEMM_TILE))
        require(grid[1] <= GRID_Y_MAX, name, f"{m} rows need {grid[1]} row tiles, more than gridDim.y allows")
        sa = (1, a.shape[1]) if trans_a else (a.shape[1], 1)
        sb = (1, b.shape[1]) if trans_b else (b.shape[1], 1)
        self.launch(name, grid, (GEMM_TILE, GEMM_TILE),
                    (np.int32(m), np.int32(n), np.int32(k), a, np.int64(sa[0]), np.int64(sa[1]),
                     b, np.int64(sb[0]), np.int64(sb[1]), out, np.int64(n)))
        return out

    def cublas_matmul(self, a, b, out, trans_a, trans_b):
        raise NotImplementedError(f"{type(self).__name__} has no cuBLAS")

    # ---- fused ops ------------------------------------------------------------
    def bias_act(self, z, b, act):
        n, k = z.shape
        rows = activations.get(act).row_kernels  # softmax, log_softmax: a kernel of their own
        name = rows[0] if rows else "bias_act_forward"
        check_array(name, "z", z)
        check_array(name, "b", b, (k,))
        check_int32(name, n=n, k=k)
        if rows:
            self.launch(name, _blocks(n), (BLOCK,), (z, b, np.int32(n), np.int32(k)))
        else:
            self.launch(name, _blocks(n * k), (BLOCK,), (z, b, np.int32(n), np.int32(k), np.int32(ACT_CODES[act])))

    def act_backward(self, dy, y, act):
        n, k = dy.shape
        if act == "linear":
            return
        rows = activations.get(act).row_kernels
        name = rows[1] if rows else "act_backward"
        check_array(name, "dy", dy)
        check_array(name, "y", y, (n, k))
        if rows:
            check_int32(name, n=n, k=k)
            self.launch(name, _blocks(n), (BLOCK,), (dy, y, np.int32(n), np.int32(k)))
        else:
            self.launch(name, _blocks(n * k), (BLOCK,), (dy, y, np.int64(n * k), np.int32(ACT_CODES[act])))

    def bias_grad(self, dz, db):
        n, k = dz.shape
        check_array("bias_grad", "dz", dz)
        check_array("bias_grad", "db", db, (k,))
        check_int32("bias_grad", n=n, k=k)
        self.launch("bias_grad", (-(-k // WARP),), (WARP, BIAS_GRAD_ROWS), (dz, db, np.int32(n), np.int32(k)))

    def loss_grad(self, kind, z, target, dz, acc, count=False, threshold=0.0):
        n, k = z.shape
        name = _LOSS_KERNELS[kind]
        check_array(name, "z", z)
        check_array(name, "dz", dz, (n, k))
        check_array(name, "target", target, (n,) if kind == "softmax_xent_sparse" else (n, k),
                    np.int32 if kind == "softmax_xent_sparse" else np.float32)
        check_array(name, "acc", acc, None, np.float64)
        require(acc.ndim == 1 and acc.size >= ACC_SIZE, name, f"acc needs at least {ACC_SIZE} slots, got {acc.shape}")
        check_int32(name, n=n, k=k)
        grid = (-(-n // BLOCK),)
        # the row launch: one thread a row, no grid stride, whole warps (every lane reaches the warp sums)
        require(BLOCK % WARP == 0 and grid[0] * BLOCK >= n, name, f"{grid} x {BLOCK} threads for {n} rows")
        args = (z, target, dz, acc, np.int32(n), np.int32(k), np.int32(bool(count)))
        if kind == "mse":
            args += (np.float32(threshold),)
        self.launch(name, grid, (BLOCK,), args)

    def metric_sum(self, kind, z, target, acc, slot, activation="linear", threshold=0.5):
        n, k = z.shape
        if activation not in ("linear", "sigmoid", "softmax") or kind not in METRIC_CODES:
            raise ValueError(f"metric_sum: kind {kind!r} with activation {activation!r} has no kernel")
        if not ACC_SIZE <= slot < acc.size or tuple(target.shape) != (n, k) or target.dtype != np.float32:
            raise ValueError(f"metric_sum: slot {slot} of {acc.size}, target {target.dtype}{tuple(target.shape)} "
                             f"for outputs {tuple(z.shape)}")
        # the row launch, as loss_grad: one thread a row, whole warps reach the warp sum
        self.launch("metric_rows", (-(-n // BLOCK),), (BLOCK,),
                    (z, target, acc, np.int32(n), np.int32(k), np.int32(METRIC_CODES[kind]),
                     np.int32(ACT_CODES[activation]), np.float32(threshold), np.int32(slot)))

    def run_traced(self, program, arrays, acc=None, slot=0, acc_scale=1.0, params=None):
        name = program.kernel_name
        first = arrays[program.input_names[0]]
        n, k = first.shape
        for key in program.input_names + [out for out, _ in program.outputs]:
            check_array(name, key, arrays[key], None)
            require(arrays[key].shape in ((n, k), (n, 1)), name, f"{key} of shape {arrays[key].shape}, "
                                                                  f"expected ({n}, {k}) or ({n}, 1)")
        check_int32(name, n=n, k=k)
        args = tuple(arrays[key] for key in program.input_names) + tuple(arrays[out] for out, _ in program.outputs)
        if program.row_sum is not None:
            check_array(name, "acc", acc, None, np.float64)
            require(0 <= slot < acc.size, name, f"slot {slot} of an acc of {acc.size}")
            args += (acc, np.int32(n), np.int32(k), np.int32(slot), np.float64(acc_scale))
        else:
            args += (np.int32(n), np.int32(k))
        args += tuple(np.float32((params or {})[p]) for p in program.param_names)
        kernels.register_generated(name, program.source)
        # the row launch of loss_grad: one thread a row, whole warps reach the warp sum
        self.launch(name, (-(-n // BLOCK) or 1,), (BLOCK,), args)

    def gather_rows(self, src, perm, cursor, out):
        rows = out.shape[0]
        cols = int(np.prod(out.shape[1:], dtype=np.int64))
        name = _GATHER[np.dtype(src.dtype)]
        check_array(name, "src", src, (src.shape[0],) + tuple(out.shape[1:]), src.dtype)
        check_array(name, "out", out, None, np.int32 if src.dtype == np.int32 else np.float32)
        check_array(name, "perm", perm, None, np.int64)
        require(rows <= perm.size, name, f"a batch of {rows} rows from a permutation of {perm.size}")
        check_int32(name, rows=rows, cols=cols)
        self.launch(name, _blocks(rows * cols), (BLOCK,), (src, perm, cursor, out, np.int32(rows), np.int32(cols)))

    def advance(self, cursor, n, hyper=None, acc=None):
        self.launch("advance", (1,), (1,), (
            cursor, self._placeholder(np.float32) if hyper is None else hyper,
            self._placeholder(np.float64) if acc is None else acc,
            np.int32(n), np.int32(hyper is not None), np.int32(acc is not None)))

    def sgd_update(self, params, grads, velocity, hyper, nesterov=False):
        if velocity is None:
            size = check_flat("sgd_update", params, hyper, ("grads", grads))
            self.launch("sgd_update", _blocks(size), (BLOCK,), (params, grads, hyper, np.int64(size)))
        else:
            size = check_flat("sgd_momentum_update", params, hyper, ("grads", grads), ("velocity", velocity))
            self.launch("sgd_momentum_update", _blocks(size), (BLOCK,),
                        (params, grads, velocity, hyper, np.int64(size), np.int32(bool(nesterov))))

    def adam_update(self, params, grads, m, v, hyper):
        size = check_flat("adam_update", params, hyper, ("grads", grads), ("m", m), ("v", v))
        self.launch("adam_update", _blocks(size), (BLOCK,), (params, grads, m, v, hyper, np.int64(size)))
