"""Keras Ftrl (follow the regularized leader). The whole optimizer is this file and its kernel
(kernels/optimizer.cu ftrl_update): the rule below is the NumPy reference the kernel is tested against."""
from __future__ import annotations

import numpy as np

from .._checks import check_number
from ..backend.base import HYPER
from .base import Optimizer, _nonnegative, base_args


def ftrl_rule(w, g, state, hyper) -> None:
    """With p = -learning_rate_power: n' = n + g^2; z += g + 2 l2_shrinkage w - (n'^p - n^p) / lr w;
    w <- (clip(z, -l1, l1) - z) / (n'^p / lr + 2 (l2 + beta / (2 lr))); n <- n'."""
    f = np.float32
    lr, p, l1 = f(hyper[HYPER["lr"]]), -f(hyper[HYPER["lr_power"]]), f(hyper[HYPER["l1"]])
    l2 = f(hyper[HYPER["l2"]]) + f(hyper[HYPER["beta"]]) / (f(2) * lr)
    shrink = f(2) * f(hyper[HYPER["l2_shrinkage"]])
    n, z = state[0], state[1]
    n_new = n + g * g
    n_pow = np.power(n_new, p)
    z += (g + shrink * w) - ((n_pow - np.power(n, p)) / lr) * w
    w[...] = (np.clip(z, -l1, l1) - z) / (n_pow / lr + f(2) * l2)
    n[...] = n_new


class Ftrl(Optimizer):
    """Keras Ftrl (learning rate 0.001, learning_rate_power -0.5, accumulators start at 0.1)."""

    slots = 2  # accumulators, linears

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self.learning_rate_power = check_number(learning_rate_power, "Ftrl(learning_rate_power)", None, 0)
        self.initial_accumulator_value = _nonnegative(initial_accumulator_value, "Ftrl(initial_accumulator_value)")
        self.l1_regularization_strength = _nonnegative(l1_regularization_strength, "Ftrl(l1_regularization_strength)")
        self.l2_regularization_strength = _nonnegative(l2_regularization_strength, "Ftrl(l2_regularization_strength)")
        self.l2_shrinkage_regularization_strength = _nonnegative(l2_shrinkage_regularization_strength,
                                                                 "Ftrl(l2_shrinkage_regularization_strength)")
        self.beta = check_number(beta, "Ftrl(beta)")
        for key, value in (("lr_power", self.learning_rate_power), ("l1", self.l1_regularization_strength),
                           ("l2", self.l2_regularization_strength),
                           ("l2_shrinkage", self.l2_shrinkage_regularization_strength), ("beta", self.beta)):
            self._host_hyper[HYPER[key]] = value

    def _init_state(self):
        self.state[0].fill(self.initial_accumulator_value)

    def apply(self, params, grads):
        self.backend.optimizer_update("ftrl_update", ftrl_rule, params, grads, self.state, self.hyper)

    def get_config(self):
        return {**super().get_config(), "learning_rate_power": self.learning_rate_power,
                "initial_accumulator_value": self.initial_accumulator_value,
                "l1_regularization_strength": self.l1_regularization_strength,
                "l2_regularization_strength": self.l2_regularization_strength,
                "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength, "beta": self.beta}
