"""Keras Adamax: Adam with the infinity norm. The whole optimizer is this file and its kernel
(kernels/optimizer.cu adamax_update): the rule below is the NumPy reference the kernel is tested against."""
from __future__ import annotations

import numpy as np

from ..backend.base import HYPER
from ..backend.optimizer_steps import update_count
from .adam import _Moments
from .base import base_args


def adamax_rule(w, g, state, hyper) -> None:
    """m <- m + (g - m)(1 - b1); u <- max(b2 u, |g|); w <- w - lr m / ((1 - b1^t)(u + eps)), t = updates + 1."""
    lr, b1, b2, eps = (float(hyper[HYPER[k]]) for k in ("lr", "beta_1", "beta_2", "epsilon"))
    step = update_count(hyper)
    m, u = state[0], state[1]
    m += (g - m) * np.float32(1 - b1)
    np.maximum(np.float32(b2) * u, np.abs(g), out=u)
    w -= np.float32(lr) * m / (np.float32(1 - b1 ** (step + 1)) * (u + np.float32(eps)))


class Adamax(_Moments):
    """Keras Adamax (learning rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7: Adam's settings, its own rule)."""

    slots = 2

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self._moments(beta_1, beta_2, epsilon)

    def apply(self, params, grads):
        self.backend.optimizer_update("adamax_update", adamax_rule, params, grads, self.state, self.hyper)
