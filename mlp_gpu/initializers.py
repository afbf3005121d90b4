"""Weight initializers (Keras names and formulas), drawn on the host from a NumPy Generator.

Drawing on the host makes a seed give the same initial weights on every
backend, which is what the CPU/GPU parity tests compare.
"""
from __future__ import annotations

import numpy as np


def _fans(shape):
    return (shape[0], shape[1]) if len(shape) == 2 else (shape[0], shape[0])


def _truncated_normal(rng, std, shape):
    out = rng.normal(0.0, std, size=shape)
    bad = np.abs(out) > 2 * std
    while bad.any():  # redraw outside two standard deviations, as Keras does
        out[bad] = rng.normal(0.0, std, size=int(bad.sum()))
        bad = np.abs(out) > 2 * std
    return out


def glorot_uniform(shape, rng):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def glorot_normal(shape, rng):
    fan_in, fan_out = _fans(shape)
    return _truncated_normal(rng, np.sqrt(2.0 / (fan_in + fan_out)), shape)


def he_uniform(shape, rng):
    limit = np.sqrt(6.0 / _fans(shape)[0])
    return rng.uniform(-limit, limit, size=shape)


def he_normal(shape, rng):
    return _truncated_normal(rng, np.sqrt(2.0 / _fans(shape)[0]), shape)


def zeros(shape, rng):
    return np.zeros(shape)


def ones(shape, rng):
    return np.ones(shape)


INITIALIZERS = {f.__name__: f for f in (glorot_uniform, glorot_normal, he_uniform, he_normal, zeros, ones)}


def get(name):
    """Look an initializer up by name; a callable ``(shape, rng) -> array`` passes through."""
    if callable(name):
        return name
    if name not in INITIALIZERS:
        raise ValueError(f"kernel_initializer: expected one of {sorted(INITIALIZERS)}, got {name!r}")
    return INITIALIZERS[name]
