"""Per-sample metrics that are Keras' Mean of a function: top-k accuracy, MAPE, the cross-entropies.

Each is a ``MeanMetricWrapper`` of a function written with mlp_gpu.ops, so compile traces it into a
row program summed on the device (the traced-metric path), and update_state computes it on the host.
Those that take integer labels run standalone only: a traced row reads (rows, units) targets.
"""
from __future__ import annotations

import numpy as np

from .. import losses as L
from .. import ops
from ..tracing import Symbol
from .base import MeanMetricWrapper, Metric


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the score of y_true's class (its argmax) is among the k largest (ties count in), else 0."""
    if not isinstance(y_pred, Symbol):
        y_pred, y_true = np.asarray(y_pred, np.float64), np.asarray(y_true, np.float64)
    is_label = y_true == ops.max(y_true, axis=-1, keepdims=True)   # argmax(y_true), for one-hot or soft targets
    score = ops.max(ops.where(is_label, y_pred, -3.0e38), axis=-1, keepdims=True)
    return ops.cast(ops.sum(ops.cast(y_pred > score, "float32"), axis=-1) < k, "float32")


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label's score is among the k largest (or, from_sorted_ids, among the first k ids)."""
    y_pred = np.asarray(y_pred, np.float64)
    labels = np.asarray(y_true).reshape(len(y_pred))
    if from_sorted_ids:
        return np.any(y_pred[:, :k] == labels[:, None], axis=-1).astype(np.float32)
    score = np.take_along_axis(y_pred, labels.astype(np.int64)[:, None], axis=-1)
    return ((y_pred > score).sum(axis=-1) < k).astype(np.float32)


def _check_k(k, owner):
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{owner}(k): expected a positive int, got {k!r}")
    return int(k)


class _Builtin(MeanMetricWrapper):
    """One of ours: a MeanMetricWrapper of a fixed function; saved by class and config."""

    builtin = True
    targets = "dense"
    config_keys: tuple = ()

    def __init__(self, fn, name, dtype, **kwargs):
        super().__init__(fn, name=name, dtype=dtype, **kwargs)

    def get_config(self):
        if self._identifier is not None:
            return self._identifier
        return {"class_name": type(self).__name__, "config": {"name": self.name, **self._fn_kwargs}}


class TopKCategoricalAccuracy(_Builtin):
    name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name, dtype, k=_check_k(k, "TopKCategoricalAccuracy"))


class MeanAbsolutePercentageError(_Builtin):
    name = "mean_absolute_percentage_error"

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(L.mean_absolute_percentage_error, name, dtype)


class BinaryCrossentropy(_Builtin):
    """Keras' metric: binary_crossentropy of the outputs (probabilities, or logits with from_logits)."""

    name = "binary_crossentropy"

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(L.binary_crossentropy, name, dtype, from_logits=bool(from_logits),
                         label_smoothing=L.functions._check_smoothing(label_smoothing, "BinaryCrossentropy"))


class CategoricalCrossentropy(_Builtin):
    name = "categorical_crossentropy"

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        super().__init__(L.categorical_crossentropy, name, dtype, from_logits=bool(from_logits),
                         label_smoothing=L.functions._check_smoothing(label_smoothing, "CategoricalCrossentropy"),
                         axis=L.functions._check_axis(axis, "CategoricalCrossentropy"))


class _Labels(Metric):
    """A Mean of a per-sample function of integer labels: standalone only (compile refuses it)."""

    targets = "labels"

    def check(self, loss, units):
        raise ValueError(f"metrics: {type(self).__name__} reads integer labels, which a traced row program cannot "
                         "(it reads (rows, units) targets); use it standalone (update_state / result), or "
                         "'sparse_categorical_accuracy'")

    def get_config(self):
        if self._identifier is not None:
            return self._identifier
        return {"class_name": type(self).__name__, "config": {"name": self.name, **self._kwargs}}

    def values(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, **self._kwargs)


class SparseTopKCategoricalAccuracy(_Labels, function=sparse_top_k_categorical_accuracy):
    name = "sparse_top_k_categorical_accuracy"

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        self._kwargs = {"k": _check_k(k, "SparseTopKCategoricalAccuracy"), "from_sorted_ids": bool(from_sorted_ids)}
        super().__init__(dtype=dtype, name=name)


class SparseCategoricalCrossentropy(_Labels, function=L.sparse_categorical_crossentropy):
    name = "sparse_categorical_crossentropy"

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        self._kwargs = {"from_logits": bool(from_logits), "ignore_class": ignore_class,
                        "axis": L.functions._check_axis(axis, "SparseCategoricalCrossentropy")}
        super().__init__(dtype=dtype, name=name)
