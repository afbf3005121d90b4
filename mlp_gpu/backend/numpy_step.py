"""The NumPy backend's own training step: plain SGD folded into the weight-gradient products.

When nothing but the update reads the gradients, the step need not write them: each Dense layer's
weight-gradient GEMM adds straight into its kernel (``kernel <- kernel - lr x^T dz``: BLAS gemm with
alpha = -lr and beta = 1) and its bias takes -lr times the column sums of dz (axpy). That saves the
gradient buffer's write and the update's passes over the flat buffers; the step is a flat list of
calls prepared once. A layer's input gradient is taken before its kernel moves. The arithmetic is the
general step's: gemm's alpha and axpy's a both enter through one multiply-add into the weights.

Limits (else the general step runs, and ``NumpyBackend.route`` says why): the model is a plain Dense
stack in float32 with accuracy as its only metric and no regularizer (the GPU's fused step's rules,
``fused_step.spec_from_model``); the optimizer is SGD without momentum, clipping or weight decay (a
learning-rate schedule is fine: the rate is read every step); one process (a distributed fit
all-reduces the gradients between backward and update).
"""
from __future__ import annotations

from .base import HYPER


def folded_sgd_unsupported(model, rows: int) -> str | None:
    """Why the folded step cannot train ``model``, or None."""
    from .fused_step import optimizer_kind, spec_from_model  # one rule for both folded steps

    _, reason = spec_from_model(model, rows)
    if reason:
        return reason
    kind = optimizer_kind(model.optimizer)
    if kind != "sgd":
        return f"the optimizer is {kind}, not plain SGD: its update reads the gradients"
    return None


class FoldedSgdStep:
    """One training step of ``model`` on the batch at ``data``'s cursor, its workspace of ``rows`` rows.

    ``backend`` is the NumPy backend (its ops and its ``gemm``); ``acc`` the running sums.
    """

    def __init__(self, backend, model, data, acc, rows: int):
        reason = folded_sgd_unsupported(model, rows)
        if reason:
            raise ValueError(f"the folded SGD step cannot train this model: {reason}")
        self.be, self.model, self.data, self.acc = backend, model, data, acc
        self.ws = ws = model.workspace(rows)
        self.optimizer = model.optimizer
        self.hyper = model.optimizer.hyper
        layers = model.compute_layers
        last = len(layers) - 1
        fused = model.loss_fused
        self.acts = [("linear" if i == last and fused else layer.activation) for i, layer in enumerate(layers)]
        inputs = [ws.x] + ws.a[:-1]
        gemm = backend.gemm
        self.forward = [(gemm(inputs[i], layer.kernel, ws.a[i]), layer.bias, ws.a[i], self.acts[i])
                        for i, layer in enumerate(layers)]
        self.backward = []
        for i in range(last, -1, -1):
            layer = layers[i]
            input_grad = gemm(ws.dz[i], layer.kernel, ws.dz[i - 1], trans_b=True) if i else None
            fold = gemm(inputs[i], ws.dz[i], layer.kernel, trans_a=True)
            self.backward.append((ws.dz[i], ws.a[i], self.acts[i], input_grad, fold, layer.bias,
                                  backend.empty(layer.bias.shape, layer.bias.dtype)))
        loss = model.loss
        self.loss = (loss.kind(), any(m.kind is None for m in model.compiled_metrics), loss.accuracy_threshold())

    def __call__(self) -> None:
        be, ws, acc = self.be, self.ws, self.acc
        self.data.gather(ws)
        self.optimizer.begin_step()  # a schedule's rate for this step
        neg_lr = -float(self.hyper[_LR])
        for forward, bias, out, act in self.forward:
            forward(1.0, 0.0)
            be.bias_act(out, bias, act)
        kind, count, threshold = self.loss
        be.loss_grad(kind, ws.a[-1], ws.y, ws.dz[-1], acc, count, threshold)
        for dz, y, act, input_grad, fold, bias, bias_grad in self.backward:
            if act != "linear":
                be.act_backward(dz, y, act)
            if input_grad is not None:  # with the kernel as it was
                input_grad(1.0, 0.0)
            fold(neg_lr, 1.0)            # kernel <- kernel - lr x^T dz
            be.bias_grad(dz, bias_grad)
            be.axpy(bias_grad, bias, neg_lr)
        be.advance(self.data.cursor, ws.rows, self.hyper, acc)


_LR = HYPER["lr"]
