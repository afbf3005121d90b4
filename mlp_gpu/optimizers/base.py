"""Optimizers: one update over the model's flat parameter buffer per step.

Hyperparameters live in a small device buffer (see ``backend.base.HYPER``) so a
captured training step reads a new learning rate without being captured again.
"""
from __future__ import annotations

import numpy as np

from . import schedules
from .._checks import check_number
from ..backend.base import HYPER, HYPER_SIZE


def _positive(value, arg):
    return check_number(value, arg, 0, low_open=True)


def _nonnegative(value, arg):
    return check_number(value, arg, 0)


def _fraction(value, arg):
    return check_number(value, arg, 0, 1, high_open=True)


class HyperValue(float):
    """A float read from an optimizer's scalar slot that can also be written back, as Keras'
    ``Variable``: ``float(v)``, ``v.numpy()``, ``v.assign(x)``, arithmetic and formatting."""

    def __new__(cls, value, optimizer, key):
        obj = super().__new__(cls, value)
        obj._optimizer, obj._key = optimizer, key
        return obj

    def numpy(self):
        return np.float32(self)

    def assign(self, value) -> "HyperValue":
        setattr(self._optimizer, {"lr": "learning_rate"}.get(self._key, self._key), value)
        return HyperValue(self._optimizer._get(self._key), self._optimizer, self._key)


def _clip_arg(value, arg):
    return None if value is None else _positive(value, arg)


OPTIMIZERS: dict[str, type] = {}  # Keras name -> class: every optimizer file registers its class here


class Optimizer:
    """Base class with Keras' common arguments.

    learning_rate: a number or a schedule (``mlp_gpu.schedules``), evaluated on the device each step.
    weight_decay: decoupled decay ``w <- w - w * weight_decay * lr`` before each update.
    clipnorm (per weight), global_clipnorm (over all weights), clipvalue: gradient clipping, at most one.
    """

    name = "optimizer"
    slots = 0  # per-parameter state vectors
    nadam = False  # whether each step multiplies Nadam's momentum product on the device

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__ and cls.__module__.startswith("mlp_gpu."):
            OPTIMIZERS[cls.name] = cls

    def __init__(self, learning_rate, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None):
        cls = type(self).__name__
        self._host_hyper = np.zeros(HYPER_SIZE, np.float32)
        self.schedule = learning_rate if isinstance(learning_rate, schedules.LearningRateSchedule) else None
        if self.schedule is None:
            self._host_hyper[HYPER["lr"]] = _positive(learning_rate, f"{cls}(learning_rate)")
        else:
            self._host_hyper[HYPER["lr"]] = self.schedule(0)
        self.weight_decay = None if weight_decay is None else _nonnegative(weight_decay, f"{cls}(weight_decay)")
        self._host_hyper[HYPER["weight_decay"]] = self.weight_decay or 0.0
        self._host_hyper[HYPER["u_product"]] = 1.0
        self.clipnorm = _clip_arg(clipnorm, f"{cls}(clipnorm)")
        self.clipvalue = _clip_arg(clipvalue, f"{cls}(clipvalue)")
        self.global_clipnorm = _clip_arg(global_clipnorm, f"{cls}(global_clipnorm)")
        if sum(v is not None for v in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(f"{cls}: only one of clipnorm, clipvalue and global_clipnorm can be set; got "
                             f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}")
        self.backend = None
        self.hyper = None   # device copy of _host_hyper once built
        self.state = None   # (slots, n_params) device buffer

    def build(self, backend, size: int, dtype=np.float32, segments=None) -> None:
        """Fresh state for ``size`` parameters on ``backend``; ``load_state`` restores a saved one.
        ``segments``: where each weight starts and ends in the flat buffer (for clipnorm)."""
        self.backend = backend
        self._host_hyper[HYPER["iterations"]] = 0
        self._host_hyper[HYPER["u_product"]] = 1.0
        self.hyper = backend.asarray(self._host_hyper.copy())
        self.state = backend.zeros((self.slots, size), dtype)
        self._init_state()
        bounds = [0, size] if self.global_clipnorm is not None or segments is None else list(segments)
        self._segments = backend.asarray(np.asarray(bounds, np.int64))
        self._table = None if self.schedule is None else backend.asarray(self.schedule.encode())

    def _init_state(self) -> None:
        """Initial values of the state slots (zeros unless a subclass says otherwise)."""

    def begin_step(self) -> None:
        """Ready the scalars this step's update reads: the schedule's rate, Nadam's momentum product."""
        if self._table is not None or self.nadam:
            self.backend.optimizer_prepare(self.hyper, self._table, self.nadam)

    def update(self, params, grads) -> None:
        """One step over the flat buffers: schedule, clipping, then the update (weight decay first)."""
        be = self.backend
        self.begin_step()
        if self.clipvalue is not None:
            be.clip_by_value(grads, self.clipvalue)
        elif self.clipnorm is not None or self.global_clipnorm is not None:
            be.clip_by_norm(grads, self._segments, self.clipnorm or self.global_clipnorm)
        self.apply(params, grads)

    def apply(self, params, grads) -> None:
        raise NotImplementedError

    def load_state(self, state, iterations: int = 0) -> None:
        """Restore the per-parameter state and step count of a built optimizer (as saved with the model)."""
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}.load_state: not built yet; compile the model first")
        state = np.asarray(state)
        if state.shape != tuple(self.state.shape):
            raise ValueError(f"state: expected shape {tuple(self.state.shape)}, got {state.shape}")
        self.state[...] = self.backend.asarray(state, self.state.dtype)
        self._set("iterations", int(iterations))

    def _set(self, key, value):
        self._host_hyper[HYPER[key]] = value
        if self.hyper is not None:
            self.hyper[HYPER[key]] = value

    def _get(self, key):
        if self.hyper is not None:
            return float(self.backend.to_host(self.hyper)[HYPER[key]])
        return float(self._host_hyper[HYPER[key]])

    @property
    def learning_rate(self) -> "HyperValue":
        """The learning rate on the device, used as Keras code uses its variable: ``float(lr)``,
        ``lr.numpy()``, ``lr.assign(0.001)``; assigning the property (``opt.learning_rate = 0.001``)
        works too. Either writes the device slot that the next step reads. With a schedule: the
        schedule's rate for the next step (read-only)."""
        if self.schedule is not None:
            return HyperValue(float(np.float32(self.schedule(self.iterations))), self, "lr")
        return HyperValue(self._get("lr"), self, "lr")

    @learning_rate.setter
    def learning_rate(self, value):
        if self.schedule is not None:
            raise TypeError(f"learning_rate: this optimizer follows a {type(self.schedule).__name__} schedule, "
                            "so its learning rate cannot be set")
        self._set("lr", _positive(value, "learning_rate"))

    @property
    def iterations(self) -> int:
        return int(self._get("iterations"))

    def get_config(self) -> dict:
        lr = float(self.learning_rate) if self.schedule is None else schedules.serialize(self.schedule)
        cfg = {"name": self.name, "learning_rate": lr}
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                cfg[key] = getattr(self, key)
        return cfg


def get(optimizer) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)} or an Optimizer, got {optimizer!r}")


def from_config(config: dict) -> Optimizer:
    cfg = dict(config)
    name = cfg.pop("name", None)
    if isinstance(cfg.get("learning_rate"), dict):
        cfg["learning_rate"] = schedules.deserialize(cfg["learning_rate"])
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer config: expected name in {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**cfg)
