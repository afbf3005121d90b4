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
for bit.

Limits (else the general step runs, and ``NumpyBackend.route`` says why): the model is a plain Dense
stack in float32 with accuracy as its only metric and no regularizer (the GPU's fused step's rules,
``fused_step.spec_from_model``); the optimizer is SGD without momentum, clipping or weight decay (a
learning-rate schedule is fine: the rate is read every step); one process (a distributed fit
all-reduces the gradients between backward and update).
"""
from __future__ import annotations

from types import SimpleNamespace

from . import blas as prepared_blas
from ... import activations
from ..base import HYPER
from ..step_spec import optimizer_kind, param_offsets, spec_from_model  # one rule for both fused steps


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
        self.batch = SimpleNamespace(x=inputs[0][:, :sizes[0]], y=ws.y, rows=rows)  # what data.gather fills
        self.logits, self.dz, self.y = ws.a[-1], ws.dz, ws.y
        acts = [layer.activation for layer in layers]
        if model.loss_fused:
            acts[-1] = "linear"  # the loss takes logits
        offsets = param_offsets(sizes)
        blocks = [model.params[a:b].reshape(fan_in + 1, units)  # [kernel; bias]
                  for a, b, fan_in, units in zip(offsets, offsets[1:], sizes, sizes[1:])]
        self.neg_lr = prepared_blas.cell(dtype)
        self.blas = prepared_blas.library()
        gemm = prepared_blas.gemm
        self.forward = [(gemm(inputs[i], blocks[i], outputs[i]), outputs[i], acts[i]) for i in range(last + 1)]
        self.backward = [(ws.dz[i], outputs[i], acts[i],
                          gemm(ws.dz[i], blocks[i][:-1], ws.dz[i - 1], trans_b=True) if i else None,
                          gemm(inputs[i], ws.dz[i], blocks[i], trans_a=True, alpha=self.neg_lr, beta=1.0))
                         for i in range(last, -1, -1)]
        loss = model.loss
        self.loss = (loss.kind(), any(m.kind is None for m in model.compiled_metrics), loss.accuracy_threshold())

    def __call__(self) -> None:

        be = self.be
        self.data.gather(self.batch)
        self.optimizer.begin_step()  # a schedule's rate for this step
        self.neg_lr.value = -float(self.hyper[_LR])
        for forward, out, act in self.forward:
            forward()                    # out <- [x, 1] @ [kernel; bias]
            if act != "linear":
                activations.get(act).forward(out)
        kind, count, threshold = self.loss
        be.loss_grad(kind, self.logits, self.y, self.dz[-1], self.acc, count, threshold)
        for dz, y, act, input_grad, fold in self.backward:
            if act != "linear":
                be.act_backward(dz, y, act)
            if input_grad is not None:  # with the kernel as it was
                input_grad()
            fold()                       # [kernel; bias] <- [kernel; bias] - lr [x, 1]^T dz
        be.advance(self.data.cursor, self.rows, self.hyper, self.acc)


_LR = HYPER["lr"]
