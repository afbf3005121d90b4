"""The CPU backend: the reference implementation of every op, on NumPy.

These bodies are the CPU fallback and the oracle the kernels are tested against;
the contract of each op is documented once, on the interface in ``base.py``.
"""
from __future__ import annotations

import functools
import logging

import numpy as np
from scipy.linalg import blas

from ... import activations
from ..._checks import check_bool
from ...activations import stable_sigmoid
from ..base import ACC, HYPER, LOSS_KINDS, METRIC_KINDS, Backend, StepRunner
from .compiled_step import COMPILED_OPS, CompiledSgdStep, compiled_unsupported, numba_version
from .fused_step import FusedSgdStep, fused_sgd_unsupported
from .layer_ops import LayerOpsReference
from ..optimizer_steps import skipped, update_count
from .optimizer_ops import OptimizerOpsReference, decay_weights
from .threads import ThreadPolicy, blas_pools, usable_cpus
from ..shared_constants import PIXEL_MAX
from ...tracing.evaluate import Evaluator

log = logging.getLogger("mlp_gpu")
_LOSS, _CORRECT, _FINITE = ACC["loss_sum"], ACC["correct"], ACC["finite_steps"]


def count_correct(z, target, acc, threshold: float = 0.0) -> None:
    """acc[correct] += rows predicted right (the rule is in ``Backend.loss_grad``)."""
    if z.shape[1] == 1:
        hits = (z[:, 0] > threshold) == (target.reshape(-1) > 0.5)
    elif target.ndim == 1:
        hits = z.argmax(axis=1) == target
    else:
        hits = z.argmax(axis=1) == target.argmax(axis=1)
    acc[_CORRECT] += np.count_nonzero(hits)


def metric_sum(xp, kind, z, target, acc, slot, activation="linear", threshold=0.5) -> None:
    """Backend.metric_sum written against the array module xp (NumPy here; CupyBackend calls it with CuPy)."""
    if activation == "sigmoid":
        p = stable_sigmoid(z, xp.empty_like(z), xp)
    elif activation == "softmax":
        p = xp.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
    elif activation == "linear":
        p = z
    else:
        raise ValueError(f"activation: expected 'linear', 'sigmoid' or 'softmax', got {activation!r}")
    t = target.reshape(z.shape)
    if kind == "abs_error":
        values = xp.abs(p - t)
    elif kind == "squared_error":
        values = (p - t) ** 2
    elif kind == "binary_hits":
        values = (t == (p > threshold)).astype(z.dtype)
    else:
        raise ValueError(f"metric kind: expected one of {METRIC_KINDS}, got {kind!r}")
    acc[slot] += values.mean(axis=1).sum()


class NumpyBackend(LayerOpsReference, OptimizerOpsReference, Backend):
    """Runs everywhere; its ops are the ones the GPU kernels are tested against."""

    name = "numpy"
    xp = np

    fused_step = True  # train through numpy/fused_step.py's SGD step where the model allows it
    compiled = True    # and run that step as one compiled call (compiled_step.py) where Numba is installed
    route = None       # what the last make_runner chose: {"route", "reason", "rows", "compiled"}

    _in_step = False  # matmul picks threads per product inside a training step only

    def __init__(self, fused_step: bool = True, threads: ThreadPolicy | None = None, compiled: bool = True):
        self.fused_step = check_bool(fused_step, "NumpyBackend(fused_step)")
        self.compiled = check_bool(compiled, "NumpyBackend(compiled)")
        self._threads = threads

    @property
    def threads(self) -> ThreadPolicy:
        """This backend's BLAS thread choices and oversubscription guard (threads.py); made when first asked
        for, so that a subclass whose __init__ does not call this one's still has its own."""
        policy = self.__dict__.get("_threads")
        if policy is None:
            policy = self._threads = ThreadPolicy()
        return policy

    def __repr__(self) -> str:
        args = [name + "=False" for name in ("fused_step", "compiled") if not getattr(self, name)]
        return f"NumpyBackend({', '.join(args)})"

    def describe(self) -> dict:
        return {**super().describe(), "blas": "; ".join(blas_pools().describe()), "usable_cpus": usable_cpus(),
                "blas_threads": self.threads.describe()}

    def make_runner(self, step, rows, max_steps=None, split=None, model=None, data=None, acc=None, **parts):
        """The fused SGD step (fused_step.py) where the model allows it and ``fused_step`` is on, else ``step``;
        ``route`` records the choice and why, and the log says it."""
        self.threads.begin()  # the caller's BLAS limit and the usable CPUs, read at the start of every fit
        if not self.fused_step:
            why = "NumpyBackend(fused_step=False)"
        elif split is not None:
            why = "a distributed fit all-reduces the gradients between backward and update"
        elif model is None or data is None or acc is None:
            why = "the caller passed no model, data and sums to build the fused step from"
        else:
            why = fused_sgd_unsupported(model, rows)
        if why is None:
            step = FusedSgdStep(self, model, data, acc, rows)
            why = f"plain SGD folded into the weight-gradient GEMMs ({step.blas}'s BLAS)"
            uncompiled = self._uncompiled(model, step)
            compiled = None
            if uncompiled is None:
                step, compiled = CompiledSgdStep(step), f"Numba {numba_version()}"
                why += f", the whole step one compiled call ({compiled})"
            else:
                why += f", op by op in Python ({uncompiled})"
            self.route = {"route": "fused-sgd", "reason": why, "rows": rows, "compiled": compiled}
            log.debug("numpy step for %d rows: %s", rows, why)
            return StepRunner(step)
        self.route = {"route": "general", "reason": why, "rows": rows, "compiled": None}
        log.debug("numpy step for %d rows: the general step (%s)", rows, why)
        return StepRunner(functools.partial(self._general_step, step))

    def _uncompiled(self, model, step) -> str | None:
        """Why the fused step runs op by op rather than as one compiled call, or None."""
        if not self.compiled:
            return "NumpyBackend(compiled=False)"
        if getattr(model, "jit_compile", "auto") is False:
            return "compile(jit_compile=False)"
        # a subclass's own version of an op the compiled step has compiled in must still be called
        own = [name for name in COMPILED_OPS if getattr(type(self), name) is not getattr(NumpyBackend, name)]
        if own:
            return f"{type(self).__name__} has its own {own[0]}"
        return compiled_unsupported(step)

    def _general_step(self, step) -> None:
        """The general step with the thread policy: one thread for all of it where it says so, else matmul's."""
        self.threads.run_step(lambda single: self._in_general_step(step))

    def _in_general_step(self, step) -> None:
        self._in_step = True
        try:
            step()
        finally:
            self._in_step = False

    # Every GEMM goes through SciPy's BLAS, as the optimizers' axpy does: two OpenBLAS thread pools
    # (NumPy's and SciPy's) taking turns within one step cost more than the in-place update saves.
    def matmul(self, a, b, out, trans_a=False, trans_b=False):
        if self._in_step and self.threads.one_thread() is None:
            threads = self.threads.plan(out.shape[0] * out.shape[1] * (a.shape[0] if trans_a else a.shape[1]))
            if threads:
                blas_pools().set(threads)
        if not (a.flags.c_contiguous and b.flags.c_contiguous and out.flags.c_contiguous):
            return np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
        # row-major out = op(a) op(b) is column-major out.T = op(b).T op(a).T, over the same memory
        c = out.T
        got = _blas_for("gemm", out.dtype)(1.0, b.T, a.T, beta=0.0, c=c, trans_a=int(trans_b), trans_b=int(trans_a),
                                            overwrite_c=1)
        if got is not c:
            out[...] = got.T
        return out

    def bias_act(self, z, b, act):
        z += b
        activations.get(act).forward(z)

    def act_backward(self, dy, y, act):
        activations.get(act).derivative(dy, y)

    def bias_grad(self, dz, db):
        dz.sum(axis=0, out=db)

    def loss_grad(self, kind, z, target, dz, acc, count=False, threshold=0.0):
        if count:
            count_correct(z, target, acc, threshold)
        n, k = z.shape
        if kind in ("softmax_xent_sparse", "softmax_xent"):
            np.subtract(z, z.max(axis=1, keepdims=True), out=dz)  # shifted logits
            # row loss = log(sum exp(shifted)) - shifted[label]
            if kind == "softmax_xent_sparse":
                rows = _arange(n)
                picked = dz[rows, target]
            else:
                picked = (dz * target).sum(axis=1)
            np.exp(dz, out=dz)
            total = dz.sum(axis=1, keepdims=True)
            if kind == "softmax_xent_sparse":
                acc[_LOSS] += (np.log(total[:, 0]) - picked).sum()
                total *= n
                dz /= total                 # softmax / n in one pass
                dz[rows, target] -= 1 / n
            else:
                acc[_LOSS] += (np.log(total[:, 0]) * target.sum(axis=1) - picked).sum()
                dz /= total
                dz -= target
                dz /= n
        elif kind == "sigmoid_bce":
            # max(z,0) - z t + log(1 + exp(-|z|)), averaged over the outputs of a row
            elem = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
            acc[_LOSS] += elem.sum() / k
            stable_sigmoid(z, out=dz)
            dz -= target
            dz /= n * k
        elif kind == "mse":
            np.subtract(z, target, out=dz)
            acc[_LOSS] += (dz * dz).sum() / k
            dz *= 2.0 / (n * k)
        else:
            raise ValueError(f"loss kind: expected one of {LOSS_KINDS}, got {kind!r}")

    def metric_sum(self, kind, z, target, acc, slot, activation="linear", threshold=0.5):
        metric_sum(np, kind, z, target, acc, slot, activation, threshold)

    def run_traced(self, program, arrays, acc=None, slot=0, acc_scale=1.0, params=None):
        n = arrays[program.input_names[0]].shape[0]
        key = (program.kernel_name, np.dtype(arrays[program.input_names[0]].dtype))
        evaluators = self.__dict__.setdefault("_evaluators", {})  # one set of buffers per program and dtype
        evaluator = evaluators.get(key) or evaluators.setdefault(key, Evaluator(program, np, key[1]))
        total = evaluator.run(n, arrays, params or {})
        if total is not None:
            acc[slot] += acc_scale * float(total)

    def gather_rows(self, src, perm, cursor, out):
        n = out.shape[0]
        start = int(cursor[0])
        idx = perm[start:start + n]
        if src.dtype == np.uint8:
            np.multiply(src[idx], np.float32(1 / PIXEL_MAX), out=out)
        else:
            np.take(src, idx, axis=0, out=out)

    def advance(self, cursor, n, hyper=None, acc=None):
        cursor += n
        if hyper is not None:
            hyper[HYPER["iterations"]] += 1
        if acc is not None and np.isfinite(acc[_LOSS]):
            acc[_FINITE] += 1

    # The optimizers make as few passes over the flat buffers as BLAS allows: axpy updates in place
    # (y <- a x + y, one pass, no temporary), where NumPy would need a scaled copy and a subtraction.
    def sgd_update(self, params, grads, velocity, hyper, nesterov=False):
        if skipped(hyper):
            return
        decay_weights(params, hyper)
        lr = float(hyper[HYPER["lr"]])
        if velocity is None:
            axpy(grads, params, a=-lr)
            return
        m = float(hyper[HYPER["momentum"]])
        velocity *= m
        axpy(grads, velocity, a=-lr)          # v <- m v - lr g
        if nesterov:
            axpy(grads, params, a=-lr)        # w <- w + m v - lr g
            axpy(velocity, params, a=m)
        else:
            axpy(velocity, params, a=1.0)     # w <- w + v

    def adam_update(self, params, grads, m, v, hyper):
        if skipped(hyper):
            return
        decay_weights(params, hyper)
        h = hyper
        lr, b1, b2, eps = (float(h[HYPER[k]]) for k in ("lr", "beta_1", "beta_2", "epsilon"))
        t = update_count(h) + 1
        alpha = lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        m *= b1
        axpy(grads, m, a=1 - b1)              # m <- b1 m + (1 - b1) g
        grads *= grads
        v *= b2
        axpy(grads, v, a=1 - b2)              # v <- b2 v + (1 - b2) g^2
        np.sqrt(v, out=grads)                 # grads is scratch from here on
        grads += eps
        np.divide(m, grads, out=grads)
        axpy(grads, params, a=-alpha)         # w <- w - alpha m / (sqrt(v) + eps)


@functools.lru_cache(maxsize=64)
def _arange(n: int):
    """0 .. n-1, made once per batch size (the sparse loss indexes its rows with it every step)."""
    rows = np.arange(n)
    rows.flags.writeable = False
    return rows


@functools.lru_cache(maxsize=None)
def _blas_for(name, dtype):
    return blas.get_blas_funcs(name, dtype=dtype)  # s... for float32, d... for float64


def axpy(x, y, a: float) -> None:
    """y <- a x + y in place, one pass (BLAS axpy)."""
    out = _blas_for("axpy", y.dtype)(x, y, a=a)
    if out is not y:  # f2py copied (y not contiguous, or of another dtype): write the result back
        y[...] = out
