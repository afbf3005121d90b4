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
    ("InverseTimeDecay", "inverse_time"), ("CosineDecay", "cosine"), ("PolynomialDecay", "polynomial"),
    ("CosineDecayRestarts", "cosine_restarts"))}
HEADER = SCHEDULE_HEADER
_EXP, _PIECEWISE, _INV, _COSINE, _POLY, _RESTARTS = (KINDS[k] for k in (
    "ExponentialDecay", "PiecewiseConstantDecay", "InverseTimeDecay", "CosineDecay", "PolynomialDecay",
    "CosineDecayRestarts"))


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

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _StepDecay(LearningRateSchedule):
    """A decay of ``initial_learning_rate`` in ``p = step / decay_steps`` (floored if staircase)."""

    kind = 0

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name=None):
        cls = type(self).__name__
        self.initial_learning_rate = _number(initial_learning_rate, f"{cls}(initial_learning_rate)")
        self.decay_steps = _number(decay_steps, f"{cls}(decay_steps)", positive=True)
        self.decay_rate = _number(decay_rate, f"{cls}(decay_rate)")
        self.staircase, self.name = bool(staircase), name

    def encode(self):
        return _table(self.kind, self.initial_learning_rate, self.decay_steps, self.decay_rate, float(self.staircase))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name}


class ExponentialDecay(_StepDecay):
    """``initial_learning_rate * decay_rate ** p``."""

    kind = KINDS["ExponentialDecay"]

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)


class InverseTimeDecay(_StepDecay):
    """``initial_learning_rate / (1 + decay_rate * p)``."""

    kind = KINDS["InverseTimeDecay"]

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)


class PolynomialDecay(LearningRateSchedule):
    """``(initial_learning_rate - end_learning_rate) * (1 - s / d) ** power + end_learning_rate`` with
    s = min(step, decay_steps) and d = decay_steps, or with cycle s = step and d the first multiple of
    decay_steps at or above it (decay_steps at step 0)."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "PolynomialDecay(initial_learning_rate)")
        self.decay_steps = _number(decay_steps, "PolynomialDecay(decay_steps)", positive=True)
        self.end_learning_rate = _number(end_learning_rate, "PolynomialDecay(end_learning_rate)")
        self.power = _number(power, "PolynomialDecay(power)")
        self.cycle, self.name = bool(cycle), name

    def encode(self):
        return _table(KINDS["PolynomialDecay"], self.initial_learning_rate, self.decay_steps,
                      self.end_learning_rate, self.power, float(self.cycle))

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
                "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
                "name": self.name}


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR): the i-th period lasts first_decay_steps * t_mul**i steps and
    starts from initial_learning_rate * m_mul**i; each decays to alpha times its start."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0,
                 name="SGDRDecay"):
        self.initial_learning_rate = _number(initial_learning_rate, "CosineDecayRestarts(initial_learning_rate)")
        self.first_decay_steps = _number(first_decay_steps, "CosineDecayRestarts(first_decay_steps)", positive=True)
        self._t_mul = _number(t_mul, "CosineDecayRestarts(t_mul)", positive=True)
        self._m_mul = _number(m_mul, "CosineDecayRestarts(m_mul)")
        self.alpha = _number(alpha, "CosineDecayRestarts(alpha)")
        self.name = name

    def encode(self):
        return _table(KINDS["CosineDecayRestarts"], self.initial_learning_rate, self.first_decay_steps,
                      self._t_mul, self._m_mul, self.alpha)

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
                "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name}


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
    if kind == _POLY:  # p1 decay_steps, p2 end_learning_rate, p3 power, p4 cycle
        steps = p1
        if p4:
            steps *= 1.0 if step == 0 else math.ceil(step / p1)
        else:
            step = min(step, p1)
        return (lr - p2) * (1.0 - step / steps) ** p3 + p2
    if kind == _RESTARTS:  # p1 first_decay_steps, p2 t_mul, p3 m_mul, p4 alpha
        fraction = step / p1
        if p2 == 1.0:
            restart = math.floor(fraction)
            fraction -= restart
        else:
            restart = math.floor(math.log(1.0 - fraction * (1.0 - p2)) / math.log(p2))
            fraction = (fraction - (1.0 - p2 ** restart) / (1.0 - p2)) / p2 ** restart
        return lr * ((1.0 - p4) * (0.5 * p3 ** restart * (1.0 + math.cos(math.pi * fraction))) + p4)
    return lr


def _cosine(fraction, alpha):
    return (1 - alpha) * (0.5 * (1.0 + math.cos(math.pi * fraction))) + alpha


SCHEDULES = {cls.__name__: cls for cls in (ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
                                          InverseTimeDecay, CosineDecay, CosineDecayRestarts)}


def serialize(learning_rate_schedule):
    """Keras' serialized form: {"module", "class_name", "config", "registered_name"}."""
    if not isinstance(learning_rate_schedule, LearningRateSchedule):
        raise TypeError(f"learning_rate_schedule: expected a LearningRateSchedule, got {learning_rate_schedule!r}")
    cls = type(learning_rate_schedule)
    builtin = SCHEDULES.get(cls.__name__) is cls
    return {"module": "keras.optimizers.schedules" if builtin else cls.__module__, "class_name": cls.__name__,
            "config": learning_rate_schedule.get_config(), "registered_name": None if builtin else cls.__name__}


def deserialize(config, custom_objects=None):
    """A schedule from ``serialize``'s form (or Keras'); ``custom_objects`` maps class names to a user's
    LearningRateSchedule subclasses (which must encode their table to run on the device)."""
    custom = dict(custom_objects or {})
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = custom.get(name) or SCHEDULES.get(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, LearningRateSchedule)):
        raise ValueError(f"learning rate schedule: expected a config with class_name one of {sorted(SCHEDULES)} "
                         f"(or of custom_objects), got {config!r}")
    try:
        return cls.from_config(dict(config.get("config") or {}))
    except TypeError as exc:
        raise ValueError(f"learning rate schedule config: {exc}") from None


__all__ = ["LearningRateSchedule", "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay",
           "CosineDecay", "CosineDecayRestarts", "serialize", "deserialize"]


def __dir__():
    """``dir(optimizers.schedules)`` lists the schedules, as Keras' module does (Géron's chapter 11 reads it)."""
    return list(__all__)
