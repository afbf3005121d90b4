"""Keras' SGD: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations


from .._checks import check_bool
from ..backend.base import HYPER
from .base import Optimizer, _fraction


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
