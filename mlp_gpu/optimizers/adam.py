"""Keras' Adam: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations


from ..backend.base import HYPER
from .base import Optimizer, _fraction, _positive


class Adam(Optimizer):
    """Keras Adam (epsilon 1e-7)."""

    name = "adam"
    slots = 2

    def __init__(self, learning_rate=0.001, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        cls = type(self).__name__  # Adam, or a subclass sharing its settings (AdamW, Nadam, Adamax)
        self.beta_1 = _fraction(beta_1, f"{cls}(beta_1)")
        self.beta_2 = _fraction(beta_2, f"{cls}(beta_2)")
        self.epsilon = _positive(epsilon, f"{cls}(epsilon)")
        for key in ("beta_1", "beta_2", "epsilon"):
            self._host_hyper[HYPER[key]] = getattr(self, key)

    def apply(self, params, grads):
        self.backend.adam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon}
