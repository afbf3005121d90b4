"""The fused SGD step as one compiled call where Numba is installed (issue 30's quiet step).

FusedSgdStep makes some fifty Python-level calls a step: its prepared GEMMs and the NumPy glue between
them (the batch's gather, the activations, the loss, the masks, the cursor). At batch 32 on two cores the
glue took a third of the reference net's step: each NumPy call costs microseconds, and two to three
times as many once a layer-1 GEMM has streamed its weights through the core's caches
(benchmarks/cpu_step.py measures both). CompiledSgdStep keeps FusedSgdStep's plan (its buffers, its
prepared GEMMs in their order with their thread counts) and runs all of it in one call of a function
Numba compiles (step_kernel.py): the glue becomes loops, the GEMMs are called through the same BLAS entry
point with the same arguments. The plan travels as data (an op table, the GEMMs' arguments as
addresses, the buffers as a list), so one compilation, cached on disk, serves every net.

Limits (else FusedSgdStep runs op by op, and ``NumpyBackend.route`` says why): Numba importable; a backend
that does not override the ops compiled in (``COMPILED_OPS``: a subclass's own gather_rows is called); every
activation in ``ACTIVATIONS``; the loss one of ``LOSSES``, with int32 labels or float32 target rows; the
BLAS thread counts set through OpenBLAS's own call; the data held as host arrays (a resident data set, or
a streamed part's stage) of uint8 pixels or float32 rows.
"""
from __future__ import annotations

import ctypes
import functools
from importlib import metadata

import numpy as np

from ..optional import optional_import
from ...activations import LEAKY_SLOPE
from .fused_step import FusedSgdStep

ACTIVATIONS = ("linear", "relu", "leaky_relu", "sigmoid", "tanh")          # step_kernel's codes, in order
LOSSES = ("softmax_xent_sparse", "softmax_xent", "sigmoid_bce", "mse")    # likewise
COMPILED_OPS = ("gather_rows", "loss_grad", "act_backward", "advance")  # the backend ops the step has compiled in
_GEMM = ctypes.CFUNCTYPE(None, *[ctypes.c_int64] * 13)  # the prepared gemm's 13 pointers, as integers


@functools.lru_cache(maxsize=1)
def kernel():
    """(step_kernel, None), Numba imported; or (None, why not)."""
    return optional_import(f"{__package__}.step_kernel", "Numba", "; pip install 'mlp_gpu[jit]'")


def numba_version() -> str:
    return metadata.version("numba")


def compiled_unsupported(step: FusedSgdStep) -> str | None:
    """Why the fused step ``step`` cannot run as one compiled call, or None."""
    _, why = kernel()
    if why:
        return why
    other = [act for act in step.acts if act not in ACTIVATIONS]
    if other:
        return f"activation {other[0]!r} has no compiled form (compiled: {', '.join(ACTIVATIONS)})"
    kind = step.loss[0]
    if kind not in LOSSES:
        return f"the loss {kind!r} has no compiled form"
    y = step.y
    if kind == "softmax_xent_sparse":
        if y.dtype != np.int32 or y.ndim != 1:
            return f"class labels of {y.dtype} with {y.ndim} dimensions, not int32 labels"
    elif y.dtype != np.float32 or y.ndim != 2 or not y.flags.c_contiguous:
        return f"targets of {y.dtype} with {y.ndim} dimensions, not float32 rows"
    if not all(isinstance(setter, ctypes._CFuncPtr) for setter in step.pools.setters):
        return "a BLAS library's thread count is set through threadpoolctl, not OpenBLAS's own call"
    if not all(b.dtype == np.float32 and b.flags.c_contiguous for b in _buffers(step)):
        return "a step buffer is not a contiguous float32 matrix"
    if _gather_mode(step.data, step) is None:
        return "the data is not held as host arrays of uint8 pixels or float32 rows with their targets"
    return None


def _buffers(step):
    """The buffers the op table names by index: each layer input [x, 1] .. [a_last-1, 1], each hidden layer's
    gradient, the logits and their gradient."""
    return list(step.inputs) + list(step.wide[:-1]) + [step.logits, step.dz_logits]


def _gather_mode(data, step) -> int | None:
    """How the compiled call gathers the batch as ``gather_rows`` does: 1 from uint8 pixels, 2 from float32 rows;
    None where the data is not host arrays it can read (its x, y, row permutation and cursor)."""
    x, y = getattr(data, "x", None), getattr(data, "y", None)
    perm, cursor = getattr(data, "perm", None), getattr(data, "cursor", None)
    if not all(isinstance(a, np.ndarray) for a in (x, y, perm, cursor)):
        return None
    if perm.dtype != np.int64 or perm.ndim != 1 or cursor.dtype != np.int64 or cursor.shape != (1,) \
            or x.ndim != 2 or x.shape[1] != step.sizes[0] or not x.flags.c_contiguous \
            or y.dtype != step.y.dtype or y.shape[1:] != step.y.shape[1:] or not y.flags.c_contiguous:
        return None
    return {np.dtype(np.uint8): 1, np.dtype(np.float32): 2}.get(x.dtype)


class CompiledSgdStep:
    """The step a FusedSgdStep plans, the whole of it one call of ``step_kernel.run_step``; it trains with
    the plan's buffers, GEMMs, data, sums and thread policy."""

    def __init__(self, plan: FusedSgdStep):
        why = compiled_unsupported(plan)
        if why:
            raise ValueError(f"the compiled SGD step cannot train this model: {why}")
        self.plan, data = plan, plan.data
        k = self.kernel = kernel()[0]
        from numba.typed import List

        layers = len(plan.acts)
        last, logits, dz_logits = layers - 1, 2 * layers - 1, 2 * layers

        def out(i):   # the buffer holding layer i's output in its first columns
            return i + 1 if i < last else logits

        def grad(i):  # the buffer holding the gradient of layer i's output
            return layers + i if i < last else dz_logits

        ops, gemms, threads = [], [], []

        def gemm(planned, call):
            ops.append((k.OP_GEMM, len(gemms), 0, 0, 0))
            gemms.append(call.args)
            threads.append(planned or 0)

        for i, (planned, forward, _, _) in enumerate(plan.forward):
            gemm(planned, forward)
            if plan.acts[i] != "linear":
                ops.append((k.OP_FORWARD, ACTIVATIONS.index(plan.acts[i]), out(i), plan.sizes[i + 1], 0))
        kind, count, threshold = plan.loss
        ops.append((k.OP_LOSS, LOSSES.index(kind), logits, dz_logits, int(count)))
        for i, (act, _, _, _, grad_threads, input_grad, planned, fold) in zip(range(last, -1, -1), plan.backward):
            if act != "linear":
                ops.append((k.OP_BACKWARD, ACTIVATIONS.index(act), grad(i), out(i), plan.sizes[i + 1]))
            if input_grad is not None:
                gemm(grad_threads, input_grad)
            gemm(planned, fold)

        gather, sparse = _gather_mode(data, plan), kind == "softmax_xent_sparse"
        nothing = {dtype: np.empty((0,) * ndim, dtype) for dtype, ndim in ((np.uint8, 2), (np.float32, 2),
                                                                            (np.int32, 1))}  # the unused ones
        setters = plan.pools.setters
        address = {call[1].address for call in plan.forward}
        assert len(address) == 1, "the prepared GEMMs run on one BLAS"
        head = (np.array(ops, np.int64), np.array(gemms, np.int64))
        tail = (List(_buffers(plan)), _GEMM(address.pop()), setters[0], setters[-1], len(setters), gather,
                data.x if gather == 1 else nothing[np.uint8], data.x if gather == 2 else nothing[np.float32],
                data.perm, data.cursor, sparse,
                data.y if sparse else nothing[np.int32], nothing[np.float32] if sparse else data.y,
                plan.y if sparse else nothing[np.int32], nothing[np.float32] if sparse else plan.y,
                plan.acc, plan.hyper, float(LEAKY_SLOPE), 0.0 if threshold is None else float(threshold))
        self.args = head + (np.array(threads, np.int32),) + tail   # the thread plan
        self.args_single = head + (np.ones(len(threads), np.int32),) + tail  # while the guard says one thread

    def __call__(self) -> None:
        self.plan.policy.run_step(self._step)

    def _step(self, single: bool) -> None:
        plan, pools = self.plan, self.plan.pools
        plan.begin_step()
        current, pools.current = pools.current, None  # unknown until the call returns
        status, pools.current = self.kernel.run_step(*(self.args_single if single else self.args),
                                                     -1 if current is None else current)
        if status == self.kernel.BAD_LABEL:
            raise ValueError(f"y: class labels must lie in [0, {plan.sizes[-1] - 1}] for {plan.sizes[-1]} output "
                             f"units; the batch at row {int(plan.data.cursor[0])} has one outside")
        if status != self.kernel.OK:
            raise ValueError(f"the compiled SGD step read a row outside the data at row {int(plan.data.cursor[0])}")
