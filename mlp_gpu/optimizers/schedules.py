"""Learning-rate schedules with Keras' names, arguments and formulas.

A schedule is evaluated on the device at the start of every update, from the optimizer's
iteration counter (``backend.optimizer_prepare`` reads the table ``encode()`` returns), so a
captured CUDA graph follows it without being captured again. ``__call__`` is the same math on
the host, in float64 as the kernel, for the NumPy reference and for reading the current rate.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_number
from ..backend.shared_constants import SCHEDULE_CODES, SCHEDULE_HEADER

# Table layout, shared with kernels/gradients.cu (optimizer_prepare) through shared_constants:
# [kind, initial_lr, p1, p2, p3, p4, p5, n, boundaries..., values...]
KINDS = {name: SCHEDULE_CODES[code] for name, code in (
    ("constant", "constant"), ("ExponentialDecay", "exponential"), ("PiecewiseConstantDecay", "piecewise"),
    ("InverseTimeDecay", "inverse_time"), ("CosineDecay", "cosine"))}
HEADER = SCHEDULE_HEADER
_EXP, _PIECEWISE, _INV, _COSINE = (KINDS[k] for k in ("ExponentialDecay", "PiecewiseConstantDecay",
                                                      "InverseTimeDecay", "CosineDecay"))


def _number(value, arg, positive=False):
    return check_number(value, arg, 0 if positive else None, low_open=positive)


class LearningRateSchedule:
    """Base class: ``schedule(step)`` gives the learning rate of optimizer step ``step``."""

    def __call__(self, step) -> float:
        return float(evaluate(self.encode(), float(step)))

    def encode(self) -> np.ndarray:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError


class _StepDecay(LearningRateSchedule):
    """A decay of ``initial_learning_rate`` in ``p = step / decay_steps`` (floored if staircase)."""

    kind = 0

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        cls = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, f"{cls}(initial_learning_rate)")
        self.decay_steps = _number(decay_steps, f"{cls}(decay_steps)", positive=True)
        self.decay_rate = _number(decay_rate, f"{cls}(decay_rate)")
        self.staircase, self.name = bool(staircase), name or cls

    def encode(self):
        return _table(self.kind, self.initial_learning_rate, self.decay_steps, self.decay_rate, float(self.staircase))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** p``."""

    kind = KINDS["ExponentialDecay"]


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * p)``."""

    kind = KINDS["InverseTimeDecay"]


class PiecewiseConstantDecay(LearningRateSchedule):
    """``values[0]`` while step <= boundaries[0], ``values[i]`` while step <= boundaries[i], then ``values[-1]``."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1 or not boundaries:
            raise ValueError("PiecewiseConstantDecay: the length of boundaries should be 1 less than the length of "
                             f"values (and at least 1), got {len(boundaries)} boundaries and {len(values)} values")
        self.boundaries = [_number(b, "PiecewiseConstantDecay(boundaries)") for b in boundaries]
        self.values = [_number(v, "PiecewiseConstantDecay(values)") for v in values]
        if any(b1 < b0 for b0, b1 in zip(self.boundaries, self.boundaries[1:])):
            raise ValueError(f"PiecewiseConstantDecay(boundaries): expected increasing values, got {boundaries}")
        self.name = name

    def encode(self):
        return np.concatenate([_table(KINDS["PiecewiseConstantDecay"], self.values[0], n=len(self.boundaries)),
                               self.boundaries, self.values])

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` (or, after a linear warm-up of ``warmup_steps``,
    from ``warmup_target``) to ``alpha`` times it over ``decay_steps``."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = _number(initial_learning_rate, "CosineDecay(initial_learning_rate)")
        self.decay_steps = _number(decay_steps, "CosineDecay(decay_steps)", positive=True)
        self.alpha = _number(alpha, "CosineDecay(alpha)")
        self.warmup_target = None if warmup_target is None else _number(warmup_target, "CosineDecay(warmup_target)")
        self.warmup_steps = check_number(warmup_steps, "CosineDecay(warmup_steps)", 0)
        self.name = name

    def encode(self):
        warm = self.warmup_target is not None
        return _table(KINDS["CosineDecay"], self.initial_learning_rate, self.decay_steps, self.alpha, float(warm),
                      self.warmup_target if warm else 0.0, self.warmup_steps)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
                "warmup_steps": self.warmup_steps}


def _table(kind, lr, p1=0.0, p2=0.0, p3=0.0, p4=0.0, p5=0.0, n=0):
    return np.array([kind, lr, p1, p2, p3, p4, p5, n], np.float64)


def constant(lr: float) -> np.ndarray:
    return _table(0, lr)


def evaluate(table, step: float) -> float:
    """The learning rate at ``step`` from a schedule table: the reference of kernels/gradients.cu."""
    kind, lr, p1, p2, p3, p4, p5, n = (float(v) for v in table[:HEADER])
    if kind in (_EXP, _INV):  # p1 decay_steps, p2 decay_rate, p3 staircase
        p = step / p1
        if p3:
            p = math.floor(p)
        return lr * p2 ** p if kind == _EXP else lr / (1.0 + p2 * p)
    if kind == _PIECEWISE:  # n boundaries then n + 1 values
        n = int(n)
        bounds, values = table[HEADER:HEADER + n], table[HEADER + n:HEADER + 2 * n + 1]
        for b, v in zip(bounds, values):
            if step <= b:
                return float(v)
        return float(values[n])
    if kind == _COSINE:  # p1 decay_steps, p2 alpha, p3 warm-up?, p4 warmup_target, p5 warmup_steps
        if not p3:
            return lr * _cosine(min(step, p1) / p1, p2)
        step = min(step, p1 + p5)
        if step < p5:
            return (p4 - lr) * (step / p5) + lr
        return p4 * _cosine((step - p5) / p1, p2)
    return lr


def _cosine(fraction, alpha):
    return (1 - alpha) * (0.5 * (1.0 + math.cos(math.pi * fraction))) + alpha


SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, InverseTimeDecay, CosineDecay)}


def serialize(schedule: LearningRateSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}


def deserialize(config) -> LearningRateSchedule:
    if not isinstance(config, dict) or config.get("class_name") not in SCHEDULES:
        raise ValueError(f"learning rate schedule: expected one of {sorted(SCHEDULES)}, got {config!r}")
    try:
        return SCHEDULES[config["class_name"]](**dict(config.get("config") or {}))
    except TypeError as exc:
        raise ValueError(f"learning rate schedule config: {exc}") from None
