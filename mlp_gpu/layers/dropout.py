"""Dropout: zero a random fraction ``rate`` of the inputs in training and scale the rest by
1 / (1 - rate) (inverted dropout, as Keras); the identity in inference.

The mask comes from Philox4x32-10 (``backend.dropout``), keyed by the layer's seed and counted
by the model's device-side counter, so a replayed CUDA graph draws a fresh mask every step and
the NumPy reference draws the same one as the kernel.
"""
from __future__ import annotations

from .._checks import check_int, check_number
from .base import Layer, flat_features


class Dropout(Layer):
    """``Dropout(rate, noise_shape=None, seed=None, **kwargs)`` with Keras' arguments (noise_shape: only
    None, one mask entry per input; **kwargs: the Layer's, e.g. name)."""

    config_keys = Layer.config_keys | {"rate", "seed", "noise_shape"}
    uses_rng = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = check_number(rate, f"{type(self).__name__}(rate)", 0, 1)
        if noise_shape is not None:
            raise ValueError(f"{type(self).__name__}(noise_shape): only None is supported (one mask entry per "
                             f"input), got {noise_shape!r}")
        self.noise_shape = None
        self.seed = None if seed is None else check_int(seed, f"{type(self).__name__}(seed)", 0, 2**64 - 1)
        self.key = self.seed      # the Philox key; drawn from the model's seed when seed is None
        self.counter = None       # the model's device-side draw counter, set at build

    def output_shape(self, input_shape):
        self.units = flat_features(self, input_shape)
        return (self.units,)

    def attach_rng(self, rng, counter) -> None:
        """Called by the model at build: the key (if not seeded) and the shared counter."""
        if self.key is None:
            self.key = int(rng.integers(0, 2**63))
        self.counter = counter

    def buffers(self):
        return {"mask": ((self.units,), True)}

    _noisy = False  # whether the last forward dropped: a call may force training=False inside a training step

    def forward(self, backend, x, out, training=False, aux=None):
        self._noisy = bool(training)
        if training:  # kernels only: this runs inside a captured training step
            backend.dropout(x, out, aux["mask"], self.counter, self.key, self.rate)
        else:
            out[...] = x

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            if self._noisy:
                backend.dropout_backward(dy, aux["mask"], dx)
            else:
                dx[...] = dy

    def get_config(self):
        # the key in use once built, so a saved and reloaded model draws the same masks
        return {**super().get_config(), "rate": self.rate, "seed": self.key, "noise_shape": self.noise_shape}
