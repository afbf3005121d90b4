"""Optimizers: one update over the model's flat parameter buffer per step.

Hyperparameters live in a small device buffer (see ``backend.base.HYPER``) so a
captured training step reads a new learning rate without being captured again.
"""
from __future__ import annotations

import numpy as np

from ..backend.shared_constants import NADAM_DECAY
from .adam import Adam


class Nadam(Adam):
    """Keras Nadam: Adam with Nesterov momentum and the 0.96 momentum schedule."""

    name = "nadam"
    nadam = True

    def apply(self, params, grads):
        self.backend.nadam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def load_state(self, state, iterations: int = 0) -> None:
        super().load_state(state, iterations)
        # the momentum product after `iterations` steps, in float32 as the device made it
        self._set("u_product", nadam_u_product(self.beta_1, int(iterations)))


def nadam_u_product(beta_1: float, iterations: int) -> np.float32:
    """Nadam's momentum product after ``iterations`` steps, multiplied in float32 as on the device."""
    f = np.float32
    product = f(1.0)
    for t in range(1, iterations + 1):
        product = product * (f(beta_1) * (f(1) - f(0.5) * f(NADAM_DECAY ** t)))
    return product
