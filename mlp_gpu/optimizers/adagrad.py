"""Keras' Adagrad: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations


from ..backend.base import HYPER
from .base import Optimizer, _nonnegative, _positive, base_args


class Adagrad(Optimizer):
    """Keras Adagrad (accumulators start at 0.1, epsilon 1e-7)."""

    slots = 1

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self.initial_accumulator_value = _nonnegative(initial_accumulator_value,
                                                      "Adagrad(initial_accumulator_value)")
        self.epsilon = _positive(epsilon, "Adagrad(epsilon)")
        self._host_hyper[HYPER["epsilon"]] = self.epsilon

    def _init_state(self):
        self.state.fill(self.initial_accumulator_value)

    def apply(self, params, grads):
        self.backend.adagrad_update(params, grads, self.state[0], self.hyper)

    def get_config(self):
        return {**super().get_config(), "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}
