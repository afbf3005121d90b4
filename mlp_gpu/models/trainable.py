"""Frozen layers, as Keras 3 has them: ``layer.trainable = False`` (or ``model.trainable = False``, which
sets every layer's flag) keeps a layer's weights as they are through ``fit``.

``compile`` takes the flags as they are then (Keras: a change takes effect at the next compile). The step
then zeroes the frozen layers' gradients (so global clipping sees only trainable ones, as in Keras), keeps
a copy of their weights and writes it back after the optimizer's update: whatever the optimizer does with a
zero gradient (weight decay, old momentum), frozen weights come out bit for bit as they went in. The fused
routes update the whole flat buffer in one kernel, so a model with frozen layers takes the general step
(backend/step_spec.py gives the reason every route logs).

A frozen BatchNormalization runs in inference mode during training (Keras' ``training and self.trainable``):
the moving statistics normalize and stay as they are; its input gradient is then ``dy * gamma / sqrt(var +
eps)``, the derivative of that inference formula.
"""
from __future__ import annotations

import numpy as np

from ..layers.normalization import BatchNormalization


def is_trainable(layer) -> bool:
    return bool(getattr(layer, "trainable", True))


def frozen_layers(model) -> set[int]:
    """Ids of the model's computing layers whose ``trainable`` is False now (compile's snapshot); all of
    them when the model's own flag is False (Keras' ``Sequential(..., trainable=False)``)."""
    return {id(layer) for layer in model.compute_layers if not (is_trainable(layer) and model.trainable)}


def merged_ranges(ranges) -> list[tuple[int, int]]:
    """[a, b) ranges of the flat buffer, sorted and joined where they touch, empty ones dropped."""
    out: list[list[int]] = []
    for a, b in sorted(r for r in ranges if r[1] > r[0]):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


class Freeze:
    """The frozen ranges of the flat parameter buffer and the step's two ops around the update; all
    buffers are made here, so a captured step allocates nothing."""

    def __init__(self, backend, ranges, dtype):
        self.backend, self.ranges = backend, ranges
        self.saved = backend.zeros(sum(b - a for a, b in ranges), dtype)

    def before_update(self, params, grads) -> None:
        xp, at = self.backend.xp, 0
        for a, b in self.ranges:
            grads[a:b].fill(0)
            xp.copyto(self.saved[at:at + b - a], params[a:b])
            at += b - a

    def after_update(self, params) -> None:
        xp, at = self.backend.xp, 0
        for a, b in self.ranges:
            xp.copyto(params[a:b], self.saved[at:at + b - a])
            at += b - a


def make_freeze(model):
    """The model's Freeze for its compiled flags, or None when every layer trains."""
    ranges = merged_ranges(model._ranges[id(layer)] for layer in model.compute_layers
                           if id(layer) in model._frozen_ids)
    return Freeze(model.backend, ranges, model.dtype) if ranges else None


def inference_layers(model, now: bool) -> set[int]:
    """Ids of the frozen BatchNormalization layers, which run in inference mode in training too: as
    compile found them (fit), or as their flags are ``now`` (``model(x, training=True)``)."""
    frozen = frozen_layers(model) if now else model._frozen_ids
    return {id(layer) for layer in model.compute_layers
            if id(layer) in frozen and isinstance(layer, BatchNormalization)}


def frozen_bn_forward(backend, layer, x, out, aux) -> None:
    """Inference mode; aux["inv_std"] <- gamma / sqrt(moving_variance + eps), the backward's scale."""
    xp, scale = backend.xp, aux["inv_std"]
    layer.forward(backend, x, out, False, aux)
    xp.add(layer.moving_variance, scale.dtype.type(layer.epsilon), out=scale)
    xp.sqrt(scale, out=scale)
    if layer.gamma is None:
        xp.reciprocal(scale, out=scale)
    else:
        xp.divide(layer.gamma, scale, out=scale)


def frozen_bn_backward(backend, layer, dy, dx, aux) -> None:
    """dx <- dy * gamma / sqrt(moving_variance + eps); the frozen gamma and beta get no gradient."""
    if dx is not None:
        backend.xp.multiply(dy, aux["inv_std"], out=dx)


def split_counts(model) -> tuple[int, int]:
    """(trainable, non-trainable) parameter counts, as Keras' summary splits them."""
    trainable = sum(int(np.prod(v.shape)) for v in model.trainable_weights)
    return trainable, model.count_params() - trainable
