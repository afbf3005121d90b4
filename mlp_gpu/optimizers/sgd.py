"""Keras' SGD: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations

from .._checks import check_bool, check_number
from ..backend.base import HYPER
from .base import Optimizer, base_args


class SGD(Optimizer):
    """Keras SGD: plain, with momentum, or Nesterov momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self.momentum = check_number(momentum, "SGD(momentum)", 0, 1)
        self._host_hyper[HYPER["momentum"]] = self.momentum
        self.nesterov = check_bool(nesterov, "SGD(nesterov)")
        self.slots = 1 if self.momentum > 0 else 0

    def apply(self, params, grads):
        velocity = self.state[0] if self.slots else None
        self.backend.sgd_update(params, grads, velocity, self.hyper, self.nesterov)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}
