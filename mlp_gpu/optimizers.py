"""Optimizers: one update over the model's flat parameter buffer per step.

Hyperparameters live in a small device buffer (see ``backend.base.HYPER``) so a
captured training step reads a new learning rate without being captured again.
"""
from __future__ import annotations

import numpy as np

from ._checks import check_bool, check_number
from .backend.base import HYPER, HYPER_SIZE


def _positive(value, arg):
    return check_number(value, arg, 0, low_open=True)


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


class Optimizer:
    name = "optimizer"
    slots = 0  # per-parameter state vectors

    def __init__(self, learning_rate: float):
        self._host_hyper = np.zeros(HYPER_SIZE, np.float32)
        self._host_hyper[HYPER["lr"]] = _positive(learning_rate, f"{type(self).__name__}(learning_rate)")
        self.backend = None
        self.hyper = None   # device copy of _host_hyper once built
        self.state = None   # (slots, n_params) device buffer

    def build(self, backend, size: int, dtype=np.float32, segments=None) -> None:
        """Fresh state (zeros) for ``size`` parameters on ``backend``; ``load_state`` restores a saved one."""
        self.backend = backend
        self._host_hyper[HYPER["iterations"]] = 0
        self.hyper = backend.asarray(self._host_hyper.copy())
        self.state = backend.zeros((self.slots, size), dtype)

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
        works too. Either writes the device slot that the next step reads."""
        return HyperValue(self._get("lr"), self, "lr")

    @learning_rate.setter
    def learning_rate(self, value):
        self._set("lr", _positive(value, "learning_rate"))

    @property
    def iterations(self) -> int:
        return int(self._get("iterations"))

    def update(self, params, grads) -> None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name, "learning_rate": float(self.learning_rate)}


class SGD(Optimizer):
    """Keras SGD: plain, with momentum, or Nesterov momentum."""

    name = "sgd"

    def __init__(self, learning_rate: float = 0.01, momentum: float = 0.0, nesterov: bool = False):
        super().__init__(learning_rate)
        self._host_hyper[HYPER["momentum"]] = _fraction(momentum, "SGD(momentum)")
        self.momentum = float(momentum)
        self.nesterov = check_bool(nesterov, "SGD(nesterov)")
        self.slots = 1 if self.momentum > 0 else 0

    def update(self, params, grads):
        velocity = self.state[0] if self.slots else None
        self.backend.sgd_update(params, grads, velocity, self.hyper, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Keras Adam (epsilon 1e-7)."""

    name = "adam"
    slots = 2

    def __init__(self, learning_rate: float = 0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7):
        super().__init__(learning_rate)
        self.beta_1 = _fraction(beta_1, "Adam(beta_1)")
        self.beta_2 = _fraction(beta_2, "Adam(beta_2)")
        self.epsilon = _positive(epsilon, "Adam(epsilon)")
        for key in ("beta_1", "beta_2", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def update(self, params, grads):
        self.backend.adam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get(optimizer) -> Optimizer:
    if isinstance(optimizer, Optimizer):
        return optimizer
    if isinstance(optimizer, str) and optimizer.lower() in OPTIMIZERS:
        return OPTIMIZERS[optimizer.lower()]()
    raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)} or an Optimizer, got {optimizer!r}")


def from_config(config: dict) -> Optimizer:
    cfg = dict(config)
    name = cfg.pop("name", None)
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer config: expected name in {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name](**cfg)
