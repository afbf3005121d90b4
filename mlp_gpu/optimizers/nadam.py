"""Keras' Nadam: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations

import numpy as np

from ..backend.shared_constants import NADAM_DECAY
from .adam import _Moments
from .base import base_args


class Nadam(_Moments):
    """Keras Nadam: Adam with Nesterov momentum and the 0.96 momentum schedule."""

    slots = 2
    nadam = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate, **base_args(locals()), **kwargs)
        self._moments(beta_1, beta_2, epsilon)

    def apply(self, params, grads):
        self.backend.nadam_update(params, grads, self.state[0], self.state[1], self.hyper)

    def load_state(self, state, iterations: int = 0) -> None:
        super().load_state(state, iterations)
        # the momentum product after `iterations` updates, in float32 as the device made it
        self._set("u_product", nadam_u_product(self.beta_1, int(iterations)))


NADAM_EXACT_STEPS = 1 << 20  # steps multiplied out exactly; beyond, every factor is f32(beta_1) anyway


def nadam_u_product(beta_1: float, iterations: int) -> np.float32:
    """Nadam's momentum product after ``iterations`` steps, multiplied in float32 as on the device.

    The factors are multiplied in blocks (np.multiply.accumulate runs in order, so the rounding is
    the device's); past NADAM_EXACT_STEPS, where 0.96^t vanished long ago and each factor is
    f32(beta_1), the rest is one power in float64: the work stays bounded for any counter in a file.
    """
    f = np.float32
    product, t, n = f(1.0), 1, min(int(iterations), NADAM_EXACT_STEPS)
    while t <= n and product != 0:
        steps = np.arange(t, min(n, t + 65535) + 1, dtype=np.float64)
        factors = f(beta_1) * (f(1) - f(0.5) * np.power(NADAM_DECAY, steps).astype(f))
        product = np.multiply.accumulate(np.concatenate(([product], factors)))[-1]
        t = int(steps[-1]) + 1
    rest = int(iterations) - n
    if rest > 0 and product != 0:
        product = f(float(product) * float(f(beta_1)) ** rest)
    return f(product)
