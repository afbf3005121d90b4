"""Keras' Adam (its kernels in kernels/optimizer.cu: adam_update, and adam_amsgrad_update through the
generic update, whose NumPy reference is amsgrad_rule below), and the settings Adam, Nadam and Adamax share."""
from __future__ import annotations

import numpy as np

from .._checks import check_bool
from ..backend.base import HYPER
from ..backend.optimizer_steps import update_count
from .base import Optimizer, _fraction, _positive, base_args


class _Moments(Optimizer):
    """beta_1, beta_2 and epsilon, checked and in the scalar buffer (Adam, AdamW, Nadam, Adamax)."""

    def _moments(self, beta_1, beta_2, epsilon):
        cls = type(self).__name__
        self.beta_1 = _fraction(beta_1, f"{cls}(beta_1)")
        self.beta_2 = _fraction(beta_2, f"{cls}(beta_2)")
        self.epsilon = _positive(epsilon, f"{cls}(epsilon)")
        for key in ("beta_1", "beta_2", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}


def amsgrad_rule(w, g, state, hyper) -> None:
    """Adam's m and v, then v_hat <- max(v_hat, v); w <- w - alpha m / (sqrt(v_hat) + eps), t = updates + 1."""
    lr, b1, b2, eps = (float(hyper[HYPER[k]]) for k in ("lr", "beta_1", "beta_2", "epsilon"))
    t = update_count(hyper) + 1
    alpha = np.float32(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
    m, v, v_hat = state[0], state[1], state[2]
    m[...] = np.float32(b1) * m + np.float32(1 - b1) * g
    v[...] = np.float32(b2) * v + np.float32(1 - b2) * (g * g)
    np.maximum(v_hat, v, out=v_hat)
    w -= alpha * m / (np.sqrt(v_hat) + np.float32(eps))


class Adam(_Moments):
    """Keras Adam (epsilon 1e-7), with amsgrad's running maximum of v."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self._moments(beta_1, beta_2, epsilon)
        self.amsgrad = check_bool(amsgrad, f"{type(self).__name__}(amsgrad)")
        self.slots = 3 if self.amsgrad else 2  # m, v[, v_hat]

    def apply(self, params, grads):
        if self.amsgrad:
            self.backend.optimizer_update("adam_amsgrad_update", amsgrad_rule, params, grads, self.state, self.hyper)
        else:
            self.backend.adam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def get_config(self):
        return {**super().get_config(), "amsgrad": self.amsgrad}
