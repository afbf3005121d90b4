"""Metrics with Keras 3's names, classes and functions, accumulated on the device with the loss.

Each metric compile takes is a sum over rows of a per-row value (Keras' ``Mean`` of its per-sample
function), added on the device every step into the same float64 buffer as the loss (``trainer.Sums``):
the accuracy family reads the loss op's correct count, the others own one slot each, filled by
``backend.metric_sum`` or by their traced row program. The host reads the buffer once an epoch (or per
progress refresh) and ``result(total, rows)`` turns a sum into the logged value. Standalone, every
metric keeps Keras' ``update_state`` / ``result`` / ``reset_state`` on the host; the confusion-count
metrics (AUC, Precision, Recall, F1Score, R2Score) keep several slots each: their counts or column sums
(confusion.py), summed on the device per batch and turned into Keras' result on the host.

Names follow ``keras/src/trainers/compile_utils.py``: a metric given as a string is logged under
that string (``"mae"`` -> ``mae``), an object under its ``name``, a function under its
``__name__``; ``"accuracy"``/``"acc"`` pick binary, categorical or sparse accuracy from the targets.
"""
from __future__ import annotations

from .. import custom_objects
from ..backend.base import ACC, ACC_SIZE
from ..losses import (  # noqa: F401 -- Keras' metric functions
    MAE, MAPE, MSE, MSLE, binary_crossentropy, categorical_crossentropy, mae, mape, mean_absolute_percentage_error,
    mean_squared_error, mse, msle, sparse_categorical_crossentropy)
from .base import (  # noqa: F401
    Accuracy, BinaryAccuracy, CategoricalAccuracy, Mean, MeanAbsoluteError, MeanMetricWrapper, MeanSquaredError,
    Metric, RootMeanSquaredError, SparseCategoricalAccuracy, Sum, _Accuracy, binary_accuracy, categorical_accuracy,
    mean_absolute_error, sparse_categorical_accuracy)
from .confusion import AUC, F1Score, Precision, R2Score, Recall  # noqa: F401
from .probabilistic import (  # noqa: F401
    BinaryCrossentropy, CategoricalCrossentropy, MeanAbsolutePercentageError, SparseCategoricalCrossentropy,
    SparseTopKCategoricalAccuracy, TopKCategoricalAccuracy, sparse_top_k_categorical_accuracy,
    top_k_categorical_accuracy)

CLASSES = (Accuracy, SparseCategoricalAccuracy, CategoricalAccuracy, BinaryAccuracy, MeanAbsoluteError,
           MeanSquaredError, RootMeanSquaredError, MeanAbsolutePercentageError, TopKCategoricalAccuracy,
           SparseTopKCategoricalAccuracy, BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
           AUC, Precision, Recall, F1Score, R2Score)
METRICS = {name: cls for cls in CLASSES for name in (cls.__name__, cls.name)}
METRICS.update({"acc": Accuracy, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError, "mse": MeanSquaredError,
                "MSE": MeanSquaredError, "mape": MeanAbsolutePercentageError, "MAPE": MeanAbsolutePercentageError,
                "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy})
FUNCTIONS = {sparse_categorical_accuracy: SparseCategoricalAccuracy, categorical_accuracy: CategoricalAccuracy,
             binary_accuracy: BinaryAccuracy, mean_absolute_error: MeanAbsoluteError,
             mean_squared_error: MeanSquaredError, mean_absolute_percentage_error: MeanAbsolutePercentageError,
             top_k_categorical_accuracy: TopKCategoricalAccuracy,
             sparse_top_k_categorical_accuracy: SparseTopKCategoricalAccuracy,
             binary_crossentropy: BinaryCrossentropy, categorical_crossentropy: CategoricalCrossentropy,
             sparse_categorical_crossentropy: SparseCategoricalCrossentropy}


def get(identifier) -> Metric:
    """A Metric from a name, a class, an instance, a Keras metric function or a saved config."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, str) and identifier in METRICS:
        metric = METRICS[identifier](name=identifier)  # Keras logs a string metric under that string
        metric._identifier = identifier
        return metric
    if isinstance(identifier, type) and issubclass(identifier, Metric) and identifier not in (Metric, _Accuracy):
        return identifier()
    if custom_objects.is_custom(identifier) and identifier.get("class_name") not in METRICS:  # a user's (files)
        identifier = custom_objects.deserialize(identifier, "metrics")
        if isinstance(identifier, Metric):
            return identifier
    if isinstance(identifier, dict) and identifier.get("class_name") in METRICS:
        return METRICS[identifier["class_name"]](**dict(identifier.get("config") or {}))
    try:
        if identifier in FUNCTIONS:
            return FUNCTIONS[identifier](name=identifier.__name__)
    except TypeError:  # unhashable
        pass
    if callable(identifier) and not isinstance(identifier, type):
        return MeanMetricWrapper(identifier)
    raise ValueError(f"metrics: expected names from {sorted(METRICS)}, a mlp_gpu.metrics class, object or function, "
                     f"got {identifier!r}")


def serialize(metric: Metric):
    """What a model file stores: a user's metric as Keras serializes it (by name), ours by get_config."""
    return metric.get_config() if metric.builtin else custom_objects.serialize(metric)


def slots(metrics) -> list[int]:
    """Each metric's (first) slot in the running sums: the accuracy family shares the loss op's correct
    count, every other metric gets its own ``metric.size`` slots after the ACC_SIZE fixed ones."""
    out, free = [], ACC_SIZE
    for metric in metrics:
        if metric.kind is None:
            out.append(ACC["correct"])
        else:
            out.append(free)
            free += metric.size
    return out


def slots_end(metrics) -> int:
    """The running sums' size for these metrics: the fixed slots, then every metric's."""
    return max([ACC_SIZE, *(slot + m.size for m, slot in zip(metrics, slots(metrics)) if m.kind is not None)])


def result(metric, sums, slot: int, rows: int):
    """The logged value of ``metric`` from the host copy of the running sums (its ``size`` slots)."""
    return metric.result(sums[slot] if metric.size == 1 else sums[slot:slot + metric.size], rows)


def device_sum(backend, metric, z, target, acc, slot: int, activation: str) -> None:
    """Add one batch of ``metric`` into its slots on the device (all but the traced and the counted ones)."""
    if metric.kind == "device":
        metric.device_sum(backend.xp, z, target, acc, slot, activation)
    else:
        backend.metric_sum(metric.kind, z, target, acc, slot, activation, metric.threshold())


def get_list(metrics) -> list[Metric]:
    """compile's ``metrics`` as a list of Metric objects, in order; unique History keys."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, dict)) or not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    out = [get(m) for m in metrics]
    names = [m.name for m in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"metrics: each metric needs its own name, {duplicated} appear more than once")
    return out
