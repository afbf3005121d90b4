"""Keras Lion. The whole optimizer is this file and its kernel (kernels/optimizer.cu lion_update):
the rule below is the NumPy reference the kernel is tested against."""
from __future__ import annotations

import numpy as np

from .._checks import check_number
from ..backend.base import HYPER
from .base import Optimizer, base_args


def lion_rule(w, g, state, hyper) -> None:
    """w <- w - lr sign(b1 m + (1 - b1) g); m <- b2 m + (1 - b2) g."""
    lr, b1, b2 = (np.float32(hyper[HYPER[k]]) for k in ("lr", "beta_1", "beta_2"))
    m = state[0]
    w -= np.sign(m * b1 + g * (np.float32(1) - b1)) * lr
    m[...] = m * b2 + g * (np.float32(1) - b2)


class Lion(Optimizer):
    """Keras Lion (learning rate 0.001, beta_1 0.9, beta_2 0.99)."""

    slots = 1  # momentum

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        # Keras: beta_1 in (0, 1], else Lion degenerates to SignSGD
        self.beta_1 = check_number(beta_1, "Lion(beta_1)", 0, 1, low_open=True)
        self.beta_2 = check_number(beta_2, "Lion(beta_2)", 0, 1)
        for key in ("beta_1", "beta_2"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def apply(self, params, grads):
        self.backend.optimizer_update("lion_update", lion_rule, params, grads, self.state, self.hyper)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2}
