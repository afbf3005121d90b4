"""Keras' AdamW: Adam's update (kernels/optimizer.cu) with its weight decay on by default."""
from __future__ import annotations

from .adam import Adam
from .base import base_args


class AdamW(Adam):
    """Keras AdamW: Adam with decoupled weight decay (default 0.004) applied before each update."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        if weight_decay is None:
            raise ValueError("AdamW(weight_decay): expected a number >= 0, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, **base_args(locals()), **kwargs)
