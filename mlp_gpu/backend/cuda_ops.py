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

from .base import Backend
from .cuda_layer_ops import CudaLayerOps
from .shared_constants import ACC_SIZE, ACT_CODES, BIAS_GRAD_ROWS, GEMM_TILE, METRIC_CODES

BLOCK = 256          # threads per block for element- and row-wise kernels
MAX_BLOCKS = 4096    # grid-stride kernels need no more to fill an H100
_GATHER = {np.dtype(np.uint8): "gather_rows_u8", np.dtype(np.float32): "gather_rows_f32",
           np.dtype(np.int32): "gather_rows_i32"}
_LOSS_KERNELS = {"softmax_xent_sparse": "softmax_xent_sparse", "softmax_xent": "softmax_xent_dense",
                 "sigmoid_bce": "sigmoid_bce", "mse": "mse"}


def _blocks(count, per_block=BLOCK, cap=MAX_BLOCKS):
    return (max(1, min(-(-count // per_block), cap)),)


class CudaOps(CudaLayerOps, Backend):
    """Backend ops as kernel launches; subclasses define ``xp`` and ``launch``."""

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
        sa = (1, a.shape[1]) if trans_a else (a.shape[1], 1)
        sb = (1, b.shape[1]) if trans_b else (b.shape[1], 1)
        grid = (-(-n // GEMM_TILE), -(-m // GEMM_TILE))
        self.launch("sgemm_strided", grid, (GEMM_TILE, GEMM_TILE),
                    (np.int32(m), np.int32(n), np.int32(k), a, np.int64(sa[0]), np.int64(sa[1]),
                     b, np.int64(sb[0]), np.int64(sb[1]), out, np.int64(n)))
        return out

    def cublas_matmul(self, a, b, out, trans_a, trans_b):
        raise NotImplementedError(f"{type(self).__name__} has no cuBLAS")

    # ---- fused ops ------------------------------------------------------------
    def bias_act(self, z, b, act):
        n, k = z.shape
        if act == "softmax":
            self.launch("bias_softmax_forward", _blocks(n), (BLOCK,), (z, b, np.int32(n), np.int32(k)))
        else:
            self.launch("bias_act_forward", _blocks(n * k), (BLOCK,),
                        (z, b, np.int32(n), np.int32(k), np.int32(ACT_CODES[act])))

    def act_backward(self, dy, y, act):
        n, k = dy.shape
        if act == "linear":
            return
        if act == "softmax":
            self.launch("softmax_backward", _blocks(n), (BLOCK,), (dy, y, np.int32(n), np.int32(k)))
        else:
            self.launch("act_backward", _blocks(n * k), (BLOCK,),
                        (dy, y, np.int64(n * k), np.int32(ACT_CODES[act])))

    def bias_grad(self, dz, db):
        n, k = dz.shape
        self.launch("bias_grad", (-(-k // 32),), (32, BIAS_GRAD_ROWS), (dz, db, np.int32(n), np.int32(k)))

    def loss_grad(self, kind, z, target, dz, acc, count=False, threshold=0.0):
        n, k = z.shape
        args = (z, target, dz, acc, np.int32(n), np.int32(k), np.int32(bool(count)))
        if kind == "mse":
            args += (np.float32(threshold),)
        # one thread a row, no grid-stride: whole warps reach the warp sums
        self.launch(_LOSS_KERNELS[kind], (-(-n // BLOCK),), (BLOCK,), args)

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

    def gather_rows(self, src, perm, cursor, out):
        rows = out.shape[0]
        cols = int(np.prod(out.shape[1:], dtype=np.int64))
        self.launch(_GATHER[np.dtype(src.dtype)], _blocks(rows * cols), (BLOCK,),
                    (src, perm, cursor, out, np.int32(rows), np.int32(cols)))

    def advance(self, cursor, n, hyper=None, acc=None):
        self.launch("advance", (1,), (1,), (
            cursor, self._placeholder(np.float32) if hyper is None else hyper,
            self._placeholder(np.float64) if acc is None else acc,
            np.int32(n), np.int32(hyper is not None), np.int32(acc is not None)))

    def sgd_update(self, params, grads, velocity, hyper, nesterov=False):
        size = params.size
        if velocity is None:
            self.launch("sgd_update", _blocks(size), (BLOCK,), (params, grads, hyper, np.int64(size)))
        else:
            self.launch("sgd_momentum_update", _blocks(size), (BLOCK,),
                        (params, grads, velocity, hyper, np.int64(size), np.int32(bool(nesterov))))

    def adam_update(self, params, grads, m, v, hyper):
        size = params.size
        self.launch("adam_update", _blocks(size), (BLOCK,), (params, grads, m, v, hyper, np.int64(size)))
