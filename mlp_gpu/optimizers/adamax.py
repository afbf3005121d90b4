"""Keras Adamax: Adam with the infinity norm. The whole optimizer is this file and its kernel
(kernels/optimizer.cu adamax_update): the rule below is the NumPy reference the kernel is tested against."""
from __future__ import annotations

import numpy as np

from ..backend.base import HYPER
from .adam import Adam


def adamax_rule(w, g, state, hyper) -> None:
    """m <- m + (g - m)(1 - b1); u <- max(b2 u, |g|); w <- w - lr m / ((1 - b1^t)(u + eps)), t = iterations + 1."""
    lr, b1, b2, eps, step = (float(hyper[HYPER[k]]) for k in ("lr", "beta_1", "beta_2", "epsilon", "iterations"))
    m, u = state[0], state[1]
    m += (g - m) * np.float32(1 - b1)
    np.maximum(np.float32(b2) * u, np.abs(g), out=u)
    w -= np.float32(lr) * m / (np.float32(1 - b1 ** (step + 1)) * (u + np.float32(eps)))


class Adamax(Adam):
    """Keras Adamax (learning rate 0.001, beta_1 0.9, beta_2 0.999, epsilon 1e-7: Adam's settings, its own rule)."""

    name = "adamax"
    slots = 2

    def apply(self, params, grads):
        self.backend.optimizer_update("adamax_update", adamax_rule, params, grads, self.state, self.hyper)
