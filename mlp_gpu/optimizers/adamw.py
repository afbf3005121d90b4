"""Keras' AdamW: its settings and the backend update op it calls (its kernel in kernels/optimizer.cu)."""
from __future__ import annotations
from .adam import Adam


class AdamW(Adam):
    """Keras AdamW: Adam with decoupled weight decay (default 0.004) applied before each update."""

    name = "adamw"

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW(weight_decay): expected a number >= 0, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay, **kwargs)
