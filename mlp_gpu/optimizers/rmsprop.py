"""Keras' RMSprop: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations


from ..backend.base import HYPER
from .._checks import check_bool
from .base import Optimizer, _fraction, _positive, base_args


class RMSprop(Optimizer):
    """Keras RMSprop (rho 0.9, epsilon 1e-7), with optional momentum and centering."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self.rho = _fraction(rho, "RMSprop(rho)")
        self.momentum = _fraction(momentum, "RMSprop(momentum)")
        self.epsilon = _positive(epsilon, "RMSprop(epsilon)")
        self.centered = check_bool(centered, "RMSprop(centered)")
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
