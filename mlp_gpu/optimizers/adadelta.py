"""Keras Adadelta. The whole optimizer is this file and its kernel (kernels/optimizer.cu adadelta_update):
the rule below is the NumPy reference the kernel is tested against."""
from __future__ import annotations

import numpy as np

from ..backend.base import HYPER
from .base import Optimizer, _fraction, _positive, base_args


def adadelta_rule(w, g, state, hyper) -> None:
    """a <- rho a + (1 - rho) g^2; delta = -sqrt(d + eps) g / sqrt(a + eps); d <- rho d + (1 - rho) delta^2;
    w <- w + lr delta."""
    lr, rho, eps = (np.float32(hyper[HYPER[k]]) for k in ("lr", "rho", "epsilon"))
    a, d = state[0], state[1]
    a[...] = rho * a + (np.float32(1) - rho) * (g * g)
    delta = -(np.sqrt(d + eps) * g / np.sqrt(a + eps))
    d[...] = rho * d + (np.float32(1) - rho) * (delta * delta)
    w += lr * delta


class Adadelta(Optimizer):
    """Keras Adadelta (learning rate 0.001, rho 0.95, epsilon 1e-7)."""

    slots = 2  # accumulated squared gradients, accumulated squared updates

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self.rho = _fraction(rho, "Adadelta(rho)")
        self.epsilon = _positive(epsilon, "Adadelta(epsilon)")
        for key in ("rho", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def apply(self, params, grads):
        self.backend.optimizer_update("adadelta_update", adadelta_rule, params, grads, self.state, self.hyper)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}
