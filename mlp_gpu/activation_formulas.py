"""Keras' activations with their parameters, each written once against an array module ``xp``: NumPy
(``keras.activations.relu(x, negative_slope=0.5)`` on an array) or ``mlp_gpu.ops`` (the activation
layers trace them into one kernel on the GPU when their parameters are not the table's defaults).
Only names both modules have: where, maximum, minimum, clip, exp, tanh and the operators. The formulas
follow Keras 3's source op for op (keras/src/activations/activations.py, backend/numpy/nn.py).
"""
from __future__ import annotations

import math

GELU_COEFF = 0.044715  # the cubic term of gelu's tanh approximation (Hendrycks and Gimpel, 2016)


def leaky_relu(xp, x, negative_slope):
    """x where x > 0, else negative_slope * x (as torch's leaky_relu, so any slope >= 0 is right)."""
    return xp.where(x > 0, x, negative_slope * x)


def relu(xp, x, negative_slope, max_value, threshold):
    """Keras' ``ReLU.static_call``: x above threshold (clipped at max_value), negative_slope * (x - threshold)
    below it."""
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return leaky_relu(xp, x, negative_slope)
        negative_part = xp.maximum(threshold - x, 0.0) if threshold != 0 else xp.maximum(-x, 0.0)
    y = xp.where(x > threshold, x, 0.0) if threshold != 0 else xp.maximum(x, 0.0)
    if max_value is not None:
        y = xp.clip(y, 0.0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * negative_part
    return y


def expm1_nonpositive(xp, m):
    """exp(m) - 1 for m <= 0, exact near 0 with no expm1 in the module: tanh(m / 2) (exp(m) + 1)."""
    return xp.tanh(m * 0.5) * (xp.exp(m) + 1.0)


def elu(xp, x, alpha):
    """x where x > 0, else alpha (exp(x) - 1)."""
    return xp.where(x > 0, x, alpha * expm1_nonpositive(xp, xp.minimum(x, 0.0)))


def gelu_tanh(xp, x):
    """gelu's tanh approximation, Keras' ``gelu(x, approximate=True)``."""
    inner = math.sqrt(2 / math.pi) * (x + GELU_COEFF * (x * x * x))
    return x * (0.5 * (1.0 + xp.tanh(inner)))
