"""Keras' ``Reshape``, ``Rescaling`` and ``Identity``, with Keras' arguments and configs.

Batches are always (rows, features) in memory, so Reshape and Identity only change the shape the next
layer is told (``computes = False``, as Flatten): they cost nothing. Rescaling is ``x * scale + offset``.
"""
from __future__ import annotations

import math

import numpy as np

from .._checks import check_number
from .base import Layer


def flat_rows(a):
    """A (rows, ...) batch as (rows, features): a view, batches being contiguous."""
    return a.reshape(a.shape[0], -1)


MAX_DIM = 2 ** 31 - 1  # one dimension of a sample, as Keras' int32 shapes allow


def _target_shape(target_shape):
    if isinstance(target_shape, (str, bytes)) or not hasattr(target_shape, "__iter__"):
        raise TypeError(f"Reshape(target_shape): expected a tuple of ints, got {target_shape!r}")
    dims = tuple(target_shape)
    bad = [d for d in dims if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer))
           or not (0 < d <= MAX_DIM or d == -1)]
    if not dims or bad or dims.count(-1) > 1:
        raise ValueError(f"Reshape(target_shape): expected a non-empty tuple of positive ints (at most {MAX_DIM}) "
                         f"with at most one -1 (the dimension inferred from the input), got {target_shape!r}")
    return tuple(int(d) for d in dims)


class Reshape(Layer):
    """``Reshape(target_shape)``: each sample to ``target_shape`` (one entry may be -1, inferred)."""

    computes = False
    config_keys = Layer.config_keys | {"target_shape"}

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = _target_shape(target_shape)

    def output_shape(self, input_shape):
        # Python ints: a product of file-given dimensions must not wrap around as int64 would
        size, known = math.prod(int(d) for d in input_shape), math.prod(d for d in self.target_shape if d != -1)
        what = f"Reshape layer {self.name!r}" if self.name else "Reshape layer"
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(f"{what}: cannot reshape samples of shape {tuple(input_shape)} ({size} values) to "
                                 f"{self.target_shape}: {size} is not a multiple of {known}")
            return tuple(size // known if d == -1 else d for d in self.target_shape)
        if size != known:
            raise ValueError(f"{what}: cannot reshape samples of shape {tuple(input_shape)} ({size} values) to "
                             f"{self.target_shape} ({known} values)")
        return self.target_shape

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}


class Identity(Layer):
    """``Identity()``: its input, unchanged."""

    computes = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)


class Rescaling(Layer):
    """``Rescaling(scale, offset=0.0)``: ``x * scale + offset``, element-wise (numbers; Keras' per-channel
    arrays are refused by name)."""

    config_keys = Layer.config_keys | {"scale", "offset"}

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = check_number(scale, "Rescaling(scale)")
        self.offset = check_number(offset, "Rescaling(offset)")

    def forward(self, backend, x, out, training=False, aux=None):
        out = flat_rows(out)
        backend.xp.multiply(flat_rows(x), self.scale, out=out)
        if self.offset:
            out += self.offset

    def backward(self, backend, x, y, dy, dx, aux=None):
        if dx is not None:
            backend.xp.multiply(flat_rows(dy), self.scale, out=flat_rows(dx))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
