"""Keras' loss functions, ``fn(y_true, y_pred)`` -> one value per sample, each written once.

The formulas are Keras' (keras/src/losses/losses.py), written with mlp_gpu.ops: on NumPy or CuPy
arrays they compute at once (float64 for host inputs), and on the symbols ``compile`` traces them
with they become the row program whose value and gradient a training step runs on the device
(``backend.run_traced``). The cross-entropies keep NumPy bodies for any ``axis`` and for
``ignore_class``; their device forms are the fused ops (``Loss.kind``) or, with label smoothing, the
row programs below.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..tracing import Symbol

EPSILON = 1e-7  # Keras' backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]
_LOG2 = math.log(2.0)


def _pair(y_true, y_pred):
    """Both as arrays of y_pred's float dtype (float64 from lists), ranks matched as Keras'
    squeeze_or_expand_to_same_rank; symbols pass as they are."""
    if isinstance(y_pred, Symbol) or isinstance(y_true, Symbol):
        return y_true, y_pred
    y_pred = np.asarray(y_pred)
    if y_pred.dtype.kind != "f":
        y_pred = y_pred.astype(np.float64)
    y_true = np.asarray(y_true, dtype=y_pred.dtype)
    if y_true.ndim == y_pred.ndim + 1 and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    elif y_pred.ndim == y_true.ndim + 1 and y_pred.shape[-1] == 1:
        y_true = y_true[..., None]
    return y_true, y_pred


def _check_axis(axis, what):
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"{what}(axis): expected an int, got {axis!r}")
    return int(axis)


# ---- regression ---------------------------------------------------------------------------------
def mean_squared_error(y_true, y_pred):
    """mean((y_true - y_pred)^2) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


def mean_absolute_error(y_true, y_pred):
    """mean(|y_true - y_pred|) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 * mean(|(y_true - y_pred) / max(|y_true|, epsilon)|) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    diff = ops.abs((y_true - y_pred) / ops.maximum(ops.abs(y_true), EPSILON))
    return 100.0 * ops.mean(diff, axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1))^2) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    first = ops.log(ops.maximum(y_pred, EPSILON) + 1.0)
    second = ops.log(ops.maximum(y_true, EPSILON) + 1.0)
    return ops.mean(ops.square(first - second), axis=-1)


def huber(y_true, y_pred, delta=1.0):
    """mean of 0.5 e^2 where |e| <= delta, else delta |e| - 0.5 delta^2 (e = y_pred - y_true)."""
    delta = _check_delta(delta, "huber")
    y_true, y_pred = _pair(y_true, y_pred)
    error = y_pred - y_true
    abs_error = ops.abs(error)
    return ops.mean(ops.where(abs_error <= delta, 0.5 * ops.square(error), delta * abs_error - 0.5 * delta * delta),
                    axis=-1)


def _check_delta(delta, what):
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.floating, np.integer)) \
            or not np.isfinite(delta) or delta < 0:
        raise ValueError(f"{what}(delta): expected a finite number >= 0, got {delta!r}")
    return float(delta)


def log_cosh(y_true, y_pred):
    """mean(log(cosh(y_pred - y_true))) over the last axis, as x + softplus(-2x) - log 2 (no overflow)."""
    y_true, y_pred = _pair(y_true, y_pred)
    x = y_pred - y_true
    return ops.mean(x + ops.softplus(x * -2.0) - _LOG2, axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    """-sum(l2_normalize(y_true) * l2_normalize(y_pred)) over ``axis``; a norm below epsilon counts as epsilon."""
    axis = _check_axis(axis, "cosine_similarity")
    y_true, y_pred = _pair(y_true, y_pred)
    return -ops.sum(_normalize(y_true, axis) * _normalize(y_pred, axis), axis=axis)


def _normalize(x, axis):
    # Keras: x * min(rsqrt(sum x^2), 1 / eps); the same as x / sqrt(max(sum x^2, eps^2)), whose gradient is finite
    return x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=axis, keepdims=True), EPSILON * EPSILON))


# ---- probabilistic ------------------------------------------------------------------------------
def kl_divergence(y_true, y_pred):
    """sum(t log(t / p)) over the last axis, t and p clipped to [epsilon, 1]."""
    y_true, y_pred = _pair(y_true, y_pred)
    t, p = ops.clip(y_true, EPSILON, 1.0), ops.clip(y_pred, EPSILON, 1.0)
    return ops.sum(t * ops.log(t / p), axis=-1)


def poisson(y_true, y_pred):
    """mean(p - t log(p + epsilon)) over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(y_pred - y_true * ops.log(y_pred + EPSILON), axis=-1)


# ---- hinge --------------------------------------------------------------------------------------
def _hinge_labels(y_true):
    """Keras turns 0/1 labels into -1/1 when every label of the batch is 0 or 1. Concrete arrays: that
    rule; traced rows cannot see the batch, so a 0 becomes -1 element by element (the same for 0/1 or
    -1/1 labels, the labels hinge losses take)."""
    if isinstance(y_true, Symbol):
        return ops.where(y_true == 0.0, -1.0, y_true)
    binary = bool(np.all((y_true == 0) | (y_true == 1)))
    return 2.0 * y_true - 1.0 if binary else y_true


def hinge(y_true, y_pred):
    """mean(max(1 - t p, 0)) over the last axis; 0/1 labels become -1/1."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0), axis=-1)


def squared_hinge(y_true, y_pred):
    """mean(max(1 - t p, 0)^2) over the last axis; 0/1 labels become -1/1."""
    y_true, y_pred = _pair(y_true, y_pred)
    return ops.mean(ops.square(ops.maximum(1.0 - _hinge_labels(y_true) * y_pred, 0.0)), axis=-1)


def categorical_hinge(y_true, y_pred):
    """max(max((1 - t) p) - sum(t p) + 1, 0) per sample."""
    y_true, y_pred = _pair(y_true, y_pred)
    pos = ops.sum(y_true * y_pred, axis=-1)
    neg = ops.max((1.0 - y_true) * y_pred, axis=-1)
    return ops.maximum(neg - pos + 1.0, 0.0)


# ---- cross-entropies ----------------------------------------------------------------------------
def _check_smoothing(label_smoothing, what):
    if isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float, np.floating, np.integer)) \
            or not 0 <= label_smoothing <= 1:
        raise ValueError(f"{what}(label_smoothing): expected a number in [0, 1], got {label_smoothing!r}")
    return float(label_smoothing)


def _log_probs(y_pred, from_logits, axis=-1):
    """log p along ``axis``: log_softmax of logits, else log of y_pred / sum(y_pred) clipped (Keras)."""
    if from_logits:
        shifted = y_pred - ops.max(y_pred, axis=axis, keepdims=True)
        return shifted - ops.log(ops.sum(ops.exp(shifted), axis=axis, keepdims=True))
    return ops.log(ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1 - EPSILON))


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """-sum(t log p) over ``axis``; label_smoothing moves t to t (1 - s) + s / classes."""
    axis = _check_axis(axis, "categorical_crossentropy")
    label_smoothing = _check_smoothing(label_smoothing, "categorical_crossentropy")
    y_true, y_pred = _pair(y_true, y_pred)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + label_smoothing / y_pred.shape[-1]
    return -ops.sum(y_true * _log_probs(y_pred, from_logits, axis), axis=axis)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """-log p[label] per sample for integer labels; with ``ignore_class`` those samples give 0 (and
    ``SparseCategoricalCrossentropy`` averages over the others, as Keras' mask does)."""
    axis = _check_axis(axis, "sparse_categorical_crossentropy")
    y_pred = np.moveaxis(np.asarray(y_pred, np.float64), axis, -1)
    labels = np.asarray(y_true)
    if labels.ndim == y_pred.ndim and labels.shape[axis] == 1:
        labels = np.squeeze(labels, axis=axis)
    if labels.shape != y_pred.shape[:-1]:
        raise ValueError(f"sparse_categorical_crossentropy: labels of shape {labels.shape} do not match "
                         f"predictions of shape {y_pred.shape} along axis {axis}")
    valid = np.ones(labels.shape, bool) if ignore_class is None else labels != ignore_class
    labels = np.where(valid, labels, 0).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= y_pred.shape[-1]):
        raise ValueError(f"sparse_categorical_crossentropy: labels must lie in [0, {y_pred.shape[-1] - 1}]")
    with np.errstate(invalid="ignore", divide="ignore"):  # ignored rows (zeroed, as Keras) are dropped below
        log_p = _log_probs(np.where(valid[..., None], y_pred, 0.0), from_logits)
    picked = -np.take_along_axis(log_p, labels[..., None], axis=-1)[..., 0]
    return np.where(valid, picked, 0.0)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    """mean over ``axis`` of -(t log p + (1 - t) log(1 - p)); label_smoothing moves t to t (1 - s) + s / 2."""
    axis = _check_axis(axis, "binary_crossentropy")
    label_smoothing = _check_smoothing(label_smoothing, "binary_crossentropy")
    t, z = _pair(y_true, y_pred)
    if label_smoothing:
        t = t * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:  # max(z, 0) - z t + log(1 + exp(-|z|))
        elem = ops.relu(z) - z * t + ops.log1p(ops.exp(-ops.abs(z)))
    else:
        p = ops.clip(z, EPSILON, 1 - EPSILON)
        elem = -(t * ops.log(p) + (1.0 - t) * ops.log(1.0 - p))
    return ops.mean(elem, axis=axis)


# Keras' aliases (keras.losses.mse, ...)
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
bce = BCE = binary_crossentropy
logcosh = log_cosh
