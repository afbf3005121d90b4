"""Optimizers: one update over the model's flat parameter buffer per step.

Hyperparameters live in a small device buffer (see ``backend.base.HYPER``) so a
captured training step reads a new learning rate without being captured again.
"""
from __future__ import annotations

import numpy as np

from . import schedules
from ._checks import check_bool, check_number
from .backend.base import HYPER, HYPER_SIZE
from .backend.shared_constants import NADAM_DECAY


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


class Optimizer:
    """Base class with Keras' common arguments.

    learning_rate: a number or a schedule (``mlp_gpu.schedules``), evaluated on the device each step.
    weight_decay: decoupled decay ``w <- w - w * weight_decay * lr`` before each update.
    clipnorm (per weight), global_clipnorm (over all weights), clipvalue: gradient clipping, at most one.
    """

    name = "optimizer"
    slots = 0  # per-parameter state vectors
    nadam = False  # whether each step multiplies Nadam's momentum product on the device

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
        if self.nadam:  # the momentum product after `iterations` steps, in float32 as the device made it
            self._set("u_product", nadam_u_product(self.beta_1, int(iterations)))

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


class SGD(Optimizer):
    """Keras SGD: plain, with momentum, or Nesterov momentum."""

    name = "sgd"

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self._host_hyper[HYPER["momentum"]] = _fraction(momentum, "SGD(momentum)")
        self.momentum = float(momentum)
        self.nesterov = check_bool(nesterov, "SGD(nesterov)")
        self.slots = 1 if self.momentum > 0 else 0

    def apply(self, params, grads):
        velocity = self.state[0] if self.slots else None
        self.backend.sgd_update(params, grads, velocity, self.hyper, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam (epsilon 1e-7)."""

    name = "adam"
    slots = 2

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1 = _fraction(beta_1, "Adam(beta_1)")
        self.beta_2 = _fraction(beta_2, "Adam(beta_2)")
        self.epsilon = _positive(epsilon, "Adam(epsilon)")
        for key in ("beta_1", "beta_2", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def apply(self, params, grads):
        self.backend.adam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


class AdamW(Adam):
    """Keras AdamW: Adam with decoupled weight decay (default 0.004) applied before each update."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW(weight_decay): expected a number >= 0, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay, **kwargs)


class Nadam(Adam):
    """Keras Nadam: Adam with Nesterov momentum and the 0.96 momentum schedule."""

    name = "nadam"
    nadam = True

    def apply(self, params, grads):
        self.backend.nadam_update(params, grads, self.state[0], self.state[1], self.hyper)


class RMSprop(Optimizer):
    """Keras RMSprop (rho 0.9, epsilon 1e-7), with optional momentum and centering."""

    name = "rmsprop"

    def __init__(self, learning_rate=0.001, rho: float = 0.9, momentum: float = 0.0, epsilon: float = 1e-7,
                 centered: bool = False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.rho = _fraction(rho, "RMSprop(rho)")
        self.momentum = _fraction(momentum, "RMSprop(momentum)")
        self.epsilon = _positive(epsilon, "RMSprop(epsilon)")
        self.centered = bool(centered)
        for key in ("rho", "momentum", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)
        self.slots = 1 + (self.momentum > 0) + self.centered  # velocity, [momentum], [average gradient]

    def apply(self, params, grads):
        momentum = self.state[1] if self.momentum > 0 else None
        average = self.state[self.slots - 1] if self.centered else None
        self.backend.rmsprop_update(params, grads, self.state[0], momentum, average, self.hyper)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon,
                "centered": self.centered}


class Adagrad(Optimizer):
    """Keras Adagrad (accumulators start at 0.1, epsilon 1e-7)."""

    name = "adagrad"
    slots = 1

    def __init__(self, learning_rate=0.001, initial_accumulator_value: float = 0.1, epsilon: float = 1e-7,
                 **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value = _nonnegative(initial_accumulator_value,
                                                      "Adagrad(initial_accumulator_value)")
        self.epsilon = _positive(epsilon, "Adagrad(epsilon)")
        self._host_hyper[HYPER["epsilon"]] = self.epsilon

    def _init_state(self):
        self.state.fill(self.initial_accumulator_value)

    def apply(self, params, grads):
        self.backend.adagrad_update(params, grads, self.state[0], self.hyper)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


NADAM_EXACT_STEPS = 1 << 20  # steps multiplied out exactly; beyond, every factor is f32(beta_1) anyway


def nadam_u_product(beta_1: float, iterations: int) -> np.float32:
    """Nadam's momentum product after ``iterations`` steps, multiplied in float32 as on the device.

    The factors are multiplied in blocks (np.multiply.accumulate runs in order, so the rounding is
    the device's); past NADAM_EXACT_STEPS, where 0.96^t vanished long ago and each factor is
    f32(beta_1), the rest is one power in float64: the work stays bounded for any counter in a file.
    """
    f = np.float32
    product, t, n = f(1.0), 1, min(int(iterations), NADAM_EXACT_STEPS)
    while t <= n and product != 0:
        steps = np.arange(t, min(n, t + 65535) + 1, dtype=np.float64)
        factors = f(beta_1) * (f(1) - f(0.5) * np.power(NADAM_DECAY, steps).astype(f))
        product = np.multiply.accumulate(np.concatenate(([product], factors)))[-1]
        t = int(steps[-1]) + 1
    rest = int(iterations) - n
    if rest > 0 and product != 0:
        product = f(float(product) * float(f(beta_1)) ** rest)
    return f(product)


OPTIMIZERS = {cls.name: cls for cls in (SGD, Adam, AdamW, Nadam, RMSprop, Adagrad)}


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
