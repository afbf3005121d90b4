"""The NumPy backend's own training step: plain SGD folded into the weight-gradient products.

When nothing but the update reads the gradients, the step need not write them: each Dense layer's
weight-gradient GEMM adds straight into its weights (BLAS gemm with alpha = -lr, beta = 1). That
saves the gradient buffer's write and the update's passes over the flat buffers.

The bias rides inside the GEMMs, as on the GPU's cuBLASLt route (``step_plan``): Dense keeps its
kernel (in, units) and bias (units,) back to back in the flat parameter buffer, which is the
row-major (in + 1, units) matrix [kernel; bias]; each layer input carries a constant column of ones,
so ``[x, 1] @ [kernel; bias] = x @ kernel + bias`` and the fold's ``[x, 1]^T @ dz`` updates the bias
with dz's column sums. A step is then 3 GEMMs a layer (2 for the first), the activations and their
derivatives, and the loss: a flat list of calls prepared once (``prepared_blas``, on the OpenBLAS
NumPy's wheel carries where it has one). A layer's input gradient is taken before its kernel moves.
Sums run in another order than the general step's, so weights agree within float32 rounding, not bit
for bit. Each GEMM runs on the BLAS threads ``threads.ThreadPolicy`` plans for its size, every one on
a single thread while the machine is oversubscribed; between steps the caller's count is back.

Limits (else the general step runs, and ``NumpyBackend.route`` says why): the model is a plain Dense
stack in float32 with accuracy as its only metric and no regularizer (the GPU's fused step's rules,
``fused_step.spec_from_model``); the optimizer is SGD without momentum, clipping or weight decay (a
learning-rate schedule is fine: the rate is read every step); one process (a distributed fit
all-reduces the gradients between backward and update).
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from . import blas as prepared_blas
from ... import activations
from ..base import HYPER
from ..step_spec import optimizer_kind, param_offsets, spec_from_model  # one rule for both fused steps
from .threads import blas_pools


def fused_sgd_unsupported(model, rows: int) -> str | None:
    """Why the fused step cannot train ``model``, or None."""
    _, reason = spec_from_model(model, rows)
    if reason:
        return reason
    kind = optimizer_kind(model.optimizer)
    if kind != "sgd":
        return f"the optimizer is {kind}, not plain SGD: its update reads the gradients"
    return None


class FusedSgdStep:
    """One training step of ``model`` on the batch of ``rows`` rows at ``data``'s cursor.

    ``backend``: the NumPy backend (its activation, loss and advance ops); ``acc``: the running sums.
    The step's own buffers: each layer input with its ones column, the targets, each layer's gradient.
    """

    def __init__(self, backend, model, data, acc, rows: int):
        reason = fused_sgd_unsupported(model, rows)
        if reason:
            raise ValueError(f"the fused SGD step cannot train this model: {reason}")
        self.be, self.data, self.acc, self.rows = backend, data, acc, rows
        self.optimizer, self.hyper = model.optimizer, model.optimizer.hyper
        layers = model.compute_layers
        sizes = (layers[0].input_dim,) + tuple(layer.units for layer in layers)
        last, dtype = len(layers) - 1, model.dtype
        ws = model.workspace(rows)  # its targets, gradients and logits (its x and hidden outputs stay unused)
        inputs = [backend.empty((rows, width + 1), dtype) for width in sizes[:-1]]  # [x, 1], [a_i, 1]
        for buffer, width in zip(inputs, sizes):
            buffer[:, width] = 1
        outputs = [buffer[:, :width] for buffer, width in zip(inputs[1:], sizes[1:])] + [ws.a[-1]]
        # a hidden layer's gradient is as wide as its output's buffer, its last column 0: ReLU and its mask then
        # run over whole contiguous buffers (ReLU keeps the ones column 1), not over strided views
        wide = [backend.zeros((rows, width + 1), dtype) for width in sizes[1:-1]] + [ws.dz[-1]]
        grads = [buffer[:, :width] for buffer, width in zip(wide, sizes[1:])]
        self.batch = SimpleNamespace(x=inputs[0][:, :sizes[0]], y=ws.y, rows=rows)  # what data.gather fills
        self.logits, self.dz_logits, self.y = ws.a[-1], ws.dz[-1], ws.y
        acts = [layer.activation for layer in layers]
        if model.loss_fused:
            acts[-1] = "linear"  # the loss takes logits
        self.sizes, self.acts, self.inputs, self.wide = sizes, acts, inputs, wide  # the plan, for compiled_step
        offsets = param_offsets(sizes)
        blocks = [model.params[a:b].reshape(fan_in + 1, units)  # [kernel; bias]
                  for a, b, fan_in, units in zip(offsets, offsets[1:], sizes, sizes[1:])]
        self.neg_lr = prepared_blas.cell(dtype)
        self.blas = prepared_blas.library()
        gemm = prepared_blas.gemm
        # each product with its thread count (backend.threads' plan: None where the count does not matter)
        self.policy, self.pools = backend.threads, blas_pools()

        def planned(call):
            return (self.policy.plan(call.macs), call) if call is not None else (None, None)

        def whole(i):  # ReLU over a hidden layer's whole buffer, else the activation over the output itself
            return i < last and acts[i] == "relu"

        self.forward = [(*planned(gemm(inputs[i], blocks[i], outputs[i])),
                         None if acts[i] == "linear" else activations.get(acts[i]).forward,
                         inputs[i + 1] if whole(i) else outputs[i]) for i in range(last + 1)]
        self.backward = [(acts[i], wide[i] if whole(i) else grads[i], inputs[i + 1] if whole(i) else outputs[i],
                          np.empty(wide[i].shape, bool) if whole(i) else None,
                          *planned(gemm(grads[i], blocks[i][:-1], grads[i - 1], trans_b=True) if i else None),
                          *planned(gemm(inputs[i], grads[i], blocks[i], trans_a=True, alpha=self.neg_lr, beta=1.0)))
                         for i in range(last, -1, -1)]
        loss = model.loss
        self.loss = (loss.kind(), any(m.kind is None for m in model.compiled_metrics), loss.accuracy_threshold())

    def begin_step(self) -> None:
        """The optimizer's scalars for this step: a schedule's rate, read by the folds through ``neg_lr``."""
        self.optimizer.begin_step()
        self.neg_lr.value = -float(self.hyper[_LR])

    def __call__(self) -> None:
        self.policy.run_step(self._step)

    def _step(self, single: bool) -> None:
        be, pools = self.be, self.pools
        self.data.gather(self.batch)
        self.begin_step()
        for threads, forward, activate, out in self.forward:
            if threads and not single:
                pools.set(threads)
            forward()                    # out <- [x, 1] @ [kernel; bias]
            if activate is not None:
                activate(out)
        kind, count, threshold = self.loss
        be.loss_grad(kind, self.logits, self.y, self.dz_logits, self.acc, count, threshold)
        for act, dz, y, mask, grad_threads, input_grad, threads, fold in self.backward:
            if mask is not None:         # ReLU's derivative: dz <- dz * (y > 0)
                np.greater(y, 0, out=mask)
                np.multiply(dz, mask, out=dz)
            elif act != "linear":
                be.act_backward(dz, y, act)
            if input_grad is not None:  # with the kernel as it was
                if grad_threads and not single:
                    pools.set(grad_threads)
                input_grad()
            if threads and not single:
                pools.set(threads)
            fold()                       # [kernel; bias] <- [kernel; bias] - lr [x, 1]^T dz
        be.advance(self.data.cursor, self.rows, self.hyper, self.acc)


_LR = HYPER["lr"]
