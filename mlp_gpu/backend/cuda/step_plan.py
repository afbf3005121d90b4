"""The nodes of one training step on each GEMM route, as a pure function of the network's shape.

A captured step replays one graph node per kernel or GEMM, and at batch 32 the node count, not the
arithmetic, sets the time. Routes:

    kernel  today's graph: our fused kernels with our sgemm_strided (CuPy refuses cuBLAS in capture)
    cublas  the same ops, GEMMs by cuBLAS through nvmath-python's bindings on our stream
    lt      cuBLASLt: ReLU and its derivative in GEMM epilogues (RELU_AUX / DRELU with a bit-mask),
            each bias carried inside its GEMM, plain SGD folded into the weight-gradient product

How the lt route carries the bias: Dense keeps its kernel (in, units) and bias (units,) one after the
other in the flat parameter buffer, which is exactly the row-major (in + 1, units) matrix [kernel; bias].
Each layer input gets a constant column of ones, so ``[x, 1] @ [kernel; bias] = x @ kernel + bias`` and
the weight-gradient product ``[x, 1]^T @ dz`` yields the bias gradient as its last row. With plain SGD
that product is written straight into the parameters (``alpha = -lr`` read from the device, ``beta = 1``),
so there is no bias epilogue, no bias-gradient buffer and no update kernel. The learning rate is read on
the device (pointer mode DEVICE): the step's first kernel copies ``-hyper[lr]`` into a scalar slot, so a
schedule that changes the rate between epochs needs no new capture.

Layouts are cuBLAS' column-major: a row-major (rows, cols) buffer with row stride ld is the column-major
(cols x rows) matrix with leading dimension ld.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import activations
from .ops import BLOCK, _LOSS_KERNELS
from ..shared_constants import LT_SCALARS
from ..step_spec import StepSpec

PLANS = ("kernel", "cublas", "lt", "persistent")  # the node plans; routes.py says which route launches which
UPDATE_KERNELS = {"sgd": "sgd_update", "sgd_scheduled": "sgd_update", "sgd_momentum": "sgd_momentum_update",
                  "adam": "adam_update"}
FUSED_ACTIVATIONS = ("relu", "linear")  # hidden activations with a cuBLASLt epilogue and its derivative
# Scalar slots read by the lt GEMMs in pointer mode DEVICE (kernels/fused_step.cu writes NEG_LR).
SCALARS = LT_SCALARS  # slots shared with kernels/fused_step.cu (shared_constants)


@dataclass(frozen=True)
class Node:
    kind: str       # "kernel", "gemm", or "update" (the optimizer's own kernel)
    name: str       # kernel name, or what the GEMM computes
    gemm: "LtGemm | None" = None
    args: tuple = ()  # kernel arguments: buffer names (str) and typed NumPy scalars
    grid: tuple = (1,)
    block: tuple = (1,)


@dataclass(frozen=True)
class LtGemm:
    """One cublasLtMatmul, column-major: D = epilogue(alpha op(A) op(B) + beta C), C = D, float32.

    a, b, d, aux name buffers; alpha and beta name slots of the device scalars (SCALARS).
    epilogue: "default", "relu_aux" (D = relu, aux = bit-mask of D > 0) or "drelu" (D *= aux bit).
    """
    trans_a: bool
    trans_b: bool
    m: int
    n: int
    k: int
    a: str
    lda: int
    b: str
    ldb: int
    d: str
    ldd: int
    alpha: str = "one"
    beta: str = "zero"
    epilogue: str = "default"
    aux: str | None = None
    aux_ld: int = 0   # in elements (bits for the ReLU mask), as cuBLASLt counts it


def padded(n: int) -> int:
    """Row stride in floats for an input with its ones column: a multiple of 4 (16 bytes) for cuBLASLt."""
    return _round_up(n + 1, 4)


def mask_bytes(units: int) -> int:
    """Bytes per sample of a ReLU bit-mask: one bit a unit, rounded up to 16 bytes (cuBLASLt's aux ld)."""
    return _round_up(_round_up(units, 8) // 8, 16)


def _round_up(n: int, base: int) -> int:
    return -(-n // base) * base


def _dtype_name(pixels: bool) -> str:
    return "u8" if pixels else "f32"


# ---- routes that run the model's own ops ------------------------------------------------------------

def _row_kernel(act: str, which: int) -> str | None:
    """A row activation's own forward (0) or backward (1) kernel, None for an element-wise one."""
    rows = activations.get(act).row_kernels
    return rows[which] if rows else None


def _op_plan(spec: StepSpec, gemm: str) -> list[Node]:
    """The launches model.forward/loss_and_count/backward and the optimizer make (CudaOps' order)."""
    k = lambda name: Node("kernel", name)  # noqa: E731
    g = lambda what: Node("gemm", gemm, args=(what,))  # noqa: E731
    last = spec.layers - 1
    nodes = [k(f"gather_rows_{_dtype_name(spec.pixels)}"), k("gather_rows_i32" if spec.sparse else "gather_rows_f32")]
    for i, act in enumerate(spec.activations):
        nodes.append(g(f"forward{i}"))
        act = "linear" if i == last and spec.loss_fused else act
        nodes.append(k(_row_kernel(act, 0) or "bias_act_forward"))
    nodes.append(k(_LOSS_KERNELS[spec.loss]))
    for i in range(last, -1, -1):
        act = spec.activations[i]
        if not (i == last and spec.loss_fused) and act != "linear":
            nodes.append(k(_row_kernel(act, 1) or "act_backward"))
        nodes += [g(f"weight_grad{i}"), k("bias_grad")]
        if i:
            nodes.append(g(f"input_grad{i}"))
    nodes += [k(UPDATE_KERNELS.get(spec.optimizer, spec.optimizer + "_update")), k("advance")]
    return nodes


# ---- the fused cuBLASLt route ------------------------------------------------------------------------

def lt_unsupported(spec: StepSpec) -> str | None:
    """Why the lt route cannot run this step, or None."""
    hidden = spec.activations[:-1]
    bad = [a for a in hidden if a not in FUSED_ACTIVATIONS]
    if bad:
        return f"hidden activation {bad[0]!r} has no cuBLASLt epilogue (relu and linear do)"
    if not (spec.loss_fused or spec.activations[-1] == "linear"):
        return f"the output activation {spec.activations[-1]!r} is not fused into the loss {spec.loss!r}"
    for i in range(1, spec.layers):
        if hidden[i - 1] == "relu" and spec.sizes[i + 1] == 1:
            return f"layer {i} has one unit: cuBLASLt's DRELU epilogue needs k > 1"
    return None


def lt_buffers(spec: StepSpec) -> dict:
    """The lt step's own buffers: name -> (shape, dtype, ones column or None)."""
    s, n = spec.sizes, spec.rows
    out = {"x": ((n, padded(s[0])), np.float32, s[0]),
           "y": ((n,) if spec.sparse else (n, s[-1]), np.int32 if spec.sparse else np.float32, None),
           "logits": ((n, s[-1]), np.float32, None),
           "scalars": ((4,), np.float32, None),
           "ticket": ((1,), np.uint32, None),
           "scratch_cursor": ((1,), np.int64, None)}
    for i in range(spec.layers - 1):
        out[f"act{i}"] = ((n, padded(s[i + 1])), np.float32, s[i + 1])
        out[f"mask{i}"] = ((n, mask_bytes(s[i + 1])), np.uint8, None)
    for i in range(spec.layers):
        out[f"dz{i}"] = ((n, s[i + 1]), np.float32, None)
    return out


def _lt_plan(spec: StepSpec) -> list[Node]:
    s, n, last = spec.sizes, spec.rows, spec.layers - 1
    fold = spec.optimizer == "sgd"
    i32 = np.int32
    inputs = ["x"] + [f"act{i}" for i in range(last)]
    ld_in = [padded(w) for w in s[:-1]]
    target = "i32" if spec.sparse else "f32"
    nodes = [Node("kernel", f"gather_step_{_dtype_name(spec.pixels)}_{target}",
                  args=("src_x", "src_y", "perm", "cursor", "x", "y", i32(n), i32(s[0]), i32(ld_in[0]),
                        i32(1 if spec.sparse else s[-1]), "ticket", "hyper", "acc", "scalars", i32(fold)),
                  grid=(max(1, min(-(-n * s[0] // BLOCK), 4096)),), block=(BLOCK,))]
    for i in range(spec.layers):
        relu = i < last and spec.activations[i] == "relu"
        nodes.append(Node("gemm", f"forward{i}", LtGemm(
            False, False, s[i + 1], n, s[i] + 1, f"w{i}", s[i + 1], inputs[i], ld_in[i],
            f"act{i}" if i < last else "logits", ld_in[i + 1] if i < last else s[-1],
            epilogue="relu_aux" if relu else "default", aux=f"mask{i}" if relu else None,
            aux_ld=mask_bytes(s[i + 1]) * 8 if relu else 0)))
    loss_args = ("logits", "y", f"dz{last}", "acc", i32(n), i32(s[-1]), i32(spec.count))
    if spec.loss == "mse":
        loss_args += (np.float32(spec.threshold),)
    nodes.append(Node("kernel", _LOSS_KERNELS[spec.loss], args=loss_args, grid=(-(-n // BLOCK),), block=(BLOCK,)))
    for i in range(last, -1, -1):
        if i:
            relu = spec.activations[i - 1] == "relu"
            nodes.append(Node("gemm", f"input_grad{i}", LtGemm(
                True, False, s[i], n, s[i + 1], f"w{i}", s[i + 1], f"dz{i}", s[i + 1], f"dz{i - 1}", s[i],
                epilogue="drelu" if relu else "default", aux=f"mask{i - 1}" if relu else None,
                aux_ld=mask_bytes(s[i]) * 8 if relu else 0)))
        nodes.append(Node("gemm", f"weight_grad{i}", LtGemm(
            False, True, s[i + 1], s[i] + 1, n, f"dz{i}", s[i + 1], inputs[i], ld_in[i],
            f"w{i}" if fold else f"g{i}", s[i + 1], alpha="neg_lr" if fold else "one", beta="one" if fold else "zero")))
    if not fold:  # the optimizer's own update over the flat buffers, then the iteration count
        nodes += [Node("update", UPDATE_KERNELS.get(spec.optimizer, spec.optimizer + "_update")),
                  Node("kernel", "advance", args=("scratch_cursor", "hyper", "acc", i32(0), i32(1), i32(0)))]
    return nodes


def persistent_kernel(pixels: bool, sparse: bool) -> str:
    """kernels/persistent_step.cu's entry point for uint8 pixels or float32 features, int32 labels or float32
    targets."""
    return f"persistent_step_{_dtype_name(pixels)}_{'i32' if sparse else 'f32'}"


def plan_step(spec: StepSpec, route: str) -> list[Node]:
    """The nodes one training step launches on ``route``, in order (the persistent route: one cooperative launch
    runs a whole block of steps, so a step takes at most that one node)."""
    if route not in PLANS:
        raise ValueError(f"route: expected one of {PLANS}, got {route!r}")
    if route == "persistent":
        return [Node("kernel", persistent_kernel(spec.pixels, spec.sparse))]
    if route == "lt":
        reason = lt_unsupported(spec)
        if reason:
            raise ValueError(f"route 'lt' cannot run this network: {reason}")
        return _lt_plan(spec)
    return _op_plan(spec, "sgemm_strided" if route == "kernel" else "cublas_sgemm")


def nodes_per_step(spec: StepSpec, route: str) -> int:
    return len(plan_step(spec, route))
