"""Metrics with Keras' names, classes and functions, accumulated on the device with the loss.

Each metric is a sum over rows of a per-row value (Keras' ``Mean`` of its per-sample function),
added on the device every step into the same float64 buffer as the loss (``trainer.Sums``): the
accuracy family reads the loss op's correct count, the others own one slot each, filled by
``backend.metric_sum``. The host reads the buffer once an epoch (or per progress refresh) and
``result(total, rows)`` turns a sum into the logged value, e.g. sqrt(total / rows) for RMSE.

Names follow ``keras/src/trainers/compile_utils.py``: a metric given as a string is logged under
that string (``"mae"`` -> ``mae``), an object under its ``name``, a function under its
``__name__``; ``"accuracy"``/``"acc"`` pick binary, categorical or sparse accuracy from the targets.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..losses import mean_squared_error
from ..tracing import Symbol, TraceError, describe, trace_rows


# ---- Keras' per-sample functions (host, NumPy) --------------------------------------------------
def sparse_categorical_accuracy(y_true, y_pred):
    return (np.asarray(y_true).reshape(-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def categorical_accuracy(y_true, y_pred):
    return (np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)).astype(np.float32)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    hits = np.asarray(y_true, np.float32) == (np.asarray(y_pred) > threshold)
    return hits.astype(np.float32).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    return np.abs(np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)).mean(axis=-1)


mae = MAE = mean_absolute_error
mse = MSE = mean_squared_error


# ---- the classes compile uses ------------------------------------------------------------------
class Metric:
    """A metric summed per row on the device. ``kind`` is the ``backend.metric_sum`` op that adds
    its rows to an own slot; None means the loss op's correct count (the accuracy family).
    A subclass declares kind, targets and function in its header: ``class M(Metric, kind=...)``."""

    name = "metric"
    kind: str | None = None
    targets = "any"        # "labels": integer labels only, "dense": (rows, units) targets only
    function = None        # Keras' per-sample function
    size = 1               # its slots in the running sums; a "device" metric (confusion.py) sets more at check

    def __init_subclass__(cls, kind=None, targets=None, function=None, **kwargs):
        super().__init_subclass__(**kwargs)
        if kind is not None:
            cls.kind = kind
        if targets is not None:
            cls.targets = targets
        if function is not None:
            cls.function = staticmethod(function)

    builtin = True         # one of ours (saved by name or class), not a user's object

    def __init__(self, dtype=None, name=None):
        if dtype not in (None, "float32", np.float32) and getattr(dtype, "name", None) != "float32":
            raise ValueError(f"{type(self).__name__}(dtype): only float32 is supported, got {dtype!r}")
        if name is not None:
            self.name = str(name)
        self.dtype = "float32"
        self._identifier = None  # the string compile was given, kept for saving
        Metric.reset_state(self)  # not an override: a user's reset_state may read state its __init__ makes later

    # ---- Keras' standalone use: update_state, result, reset_state (on the host) ------------------------
    def reset_state(self):
        self._total, self._count = 0.0, 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        values = np.asarray(self.values(y_true, y_pred), np.float64).reshape(len(np.asarray(y_pred)), -1)
        self._total += float(values.mean(axis=1).sum())
        self._count += len(values)

    def values(self, y_true, y_pred):
        """Keras' per-sample values of this metric on host arrays."""
        return type(self).function(y_true, y_pred)

    def check(self, loss, units: int) -> None:
        """Raise if this metric cannot be computed for the loss's targets."""
        own = [c for c in type(self).__mro__ if not c.__module__.startswith("mlp_gpu") and "update_state" in vars(c)]
        if self.kind is None and own:
            # a user's Metric with its own variables (add_weight / assign_add) would read the correct count
            raise ValueError(f"metrics: {type(self).__name__} subclasses Metric with its own state, which is not "
                             "traced; subclass mlp_gpu.metrics.Mean and pass per-sample values to "
                             "super().update_state (Géron's HuberMetric(Mean)), or give a metric function")
        sparse = loss.sparse
        if self.targets == "labels" and not sparse:
            raise ValueError(f"metrics: {self.name!r} needs integer class labels (a sparse loss such as "
                             f"'sparse_categorical_crossentropy'), but loss={loss.name!r} takes (rows, {units}) "
                             "targets; use 'categorical_accuracy' or 'accuracy'")
        if self.targets == "dense" and sparse:
            raise ValueError(f"metrics: {self.name!r} needs (rows, units) targets, but loss={loss.name!r} takes "
                             "integer class labels; use 'sparse_categorical_accuracy' or 'accuracy'")

    def result(self, total=None, rows=None) -> float:
        """The logged value from the device sums (``total`` over ``rows``), else Keras' result() of update_state."""
        if total is None:
            total, rows = self._total, self._count
        return float(total / rows) if rows else 0.0

    def threshold(self) -> float:
        return 0.5

    def get_config(self):
        """What a model file stores: the string compile was given, else the class and name."""
        if self._identifier is not None:
            return self._identifier
        return {"class_name": type(self).__name__, "config": {"name": self.name}}

    def __call__(self, y_true, y_pred, sample_weight=None) -> float:
        """Keras' ``metric(y_true, y_pred)``: update_state, then result (the running value)."""
        self.update_state(y_true, y_pred, sample_weight)
        return self.result()


class _Accuracy(Metric):
    """Read from the loss op's correct count: argmax against the label (or the target's argmax);
    one output: (output > 0.5) against (target > 0.5). A traced loss makes no count: then the metric
    is its own traced row program (Keras' binary or categorical accuracy of the outputs)."""

    eager_reason = None

    def check(self, loss, units):
        super().check(loss, units)
        self.kind = "traced" if loss.traced else type(self).kind

    @staticmethod
    def _row(y_true, y_pred):
        if y_pred.shape[-1] == 1:  # Keras' binary_accuracy at 0.5
            return ops.cast(y_true == ops.cast(y_pred > 0.5, "float32"), "float32")
        # argmax(y_true) == argmax(y_pred), written with row maxima (a tie of maxima counts as a hit)
        both = ops.cast(y_true == ops.max(y_true, axis=-1, keepdims=True), "float32") * \
            ops.cast(y_pred == ops.max(y_pred, axis=-1, keepdims=True), "float32")
        return ops.cast(ops.sum(both, axis=-1) > 0.0, "float32")

    def program(self, units: int, activation: str = "linear"):
        """The traced row values on (rows, units) targets and outputs (a traced loss fuses no activation)."""
        cache = self.__dict__.setdefault("_programs", {})
        if (units, activation) not in cache:
            act = _ACTIVATIONS[activation]
            cache[units, activation] = trace_rows(lambda t, z: self._row(t, act(z)), units, f"metric {self.name!r}",
                                                  grad=False)
        return cache[units, activation]

    def host_fn(self, activation: str = "linear"):
        return lambda t, z: self._row(t, _ACTIVATIONS[activation](z))


class Accuracy(_Accuracy):
    """``"accuracy"``/``"acc"`` in compile: binary, categorical or sparse categorical accuracy, as the
    targets say. Standalone (Keras' Accuracy): how often y_pred equals y_true."""

    name = "accuracy"

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(dtype=dtype, name=name)

    def values(self, y_true, y_pred):
        y_pred = np.asarray(y_pred)
        return (np.asarray(y_true, y_pred.dtype).reshape(y_pred.shape) == y_pred).astype(np.float32)


class SparseCategoricalAccuracy(_Accuracy, targets="labels", function=sparse_categorical_accuracy):
    name = "sparse_categorical_accuracy"

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(dtype=dtype, name=name)


class CategoricalAccuracy(_Accuracy, targets="dense", function=categorical_accuracy):
    name = "categorical_accuracy"

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(dtype=dtype, name=name)

    def check(self, loss, units):
        super().check(loss, units)
        if units < 2:
            raise ValueError("metrics: 'categorical_accuracy' needs at least 2 output units; use 'binary_accuracy'")


class BinaryAccuracy(Metric, kind="binary_hits", targets="dense", function=binary_accuracy):
    """Per row, the fraction of outputs on the right side of ``threshold`` (probabilities)."""

    name = "binary_accuracy"

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating, np.integer)):
            raise ValueError(f"BinaryAccuracy(threshold): expected a number, got {threshold!r}")
        self._threshold = float(threshold)
        super().__init__(dtype=dtype, name=name)

    def values(self, y_true, y_pred):
        return binary_accuracy(y_true, y_pred, self._threshold)

    def threshold(self):
        return self._threshold

    def get_config(self):
        config = super().get_config()
        if isinstance(config, dict):
            config["config"]["threshold"] = self._threshold
        return config


class MeanAbsoluteError(Metric, kind="abs_error", targets="dense", function=mean_absolute_error):
    name = "mean_absolute_error"

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(dtype=dtype, name=name)


class MeanSquaredError(Metric, kind="squared_error", targets="dense", function=mean_squared_error):
    name = "mean_squared_error"

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(dtype=dtype, name=name)


class RootMeanSquaredError(MeanSquaredError):
    """sqrt of the mean squared error over all rows seen (not a mean of per-batch roots)."""

    name = "root_mean_squared_error"

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def result(self, total=None, rows=None):
        return math.sqrt(super().result(total, rows))


def _softmax(z):
    e = ops.exp(z - ops.max(z, axis=-1, keepdims=True))
    return e / ops.sum(e, axis=-1, keepdims=True)


_ACTIVATIONS = {"linear": lambda z: z, "sigmoid": ops.sigmoid, "softmax": _softmax}


class Mean(Metric, kind="traced", targets="dense"):
    """Keras' ``Mean``: the mean of the values ``update_state`` receives. A subclass whose ``update_state``
    passes values computed with mlp_gpu.ops to ``super().update_state`` (Géron's HuberMetric) is traced at
    compile into one kernel that sums its row means on the device; on concrete arrays it accumulates on
    the host as in Keras (``update_state``, ``result()``, ``reset_state``)."""

    name = "mean"
    builtin = False  # a user's subclass is traced and saved as the user's object

    def __init__(self, name="mean", dtype=None):
        self._traced_values = None
        super().__init__(dtype=dtype, name=name)

    def reset_state(self):
        self._total, self._count = 0.0, 0

    def update_state(self, values, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        if isinstance(values, Symbol):  # compile is tracing: keep what update_state was given
            self._traced_values = values
            return
        values = np.asarray(values, np.float64)
        rows = values.reshape(len(values), -1).mean(axis=1) if values.ndim > 1 else values.reshape(-1)
        self._total += float(rows.sum())   # Keras' reduce_to_samplewise_values: a mean per sample
        self._count += len(rows)

    def result(self, total=None, rows=None):
        """The logged value from the device sums (``total``, ``rows``), else Keras' result() of update_state."""
        if total is None:
            return self._total / self._count if self._count else 0.0
        return float(total / rows)

    def _values(self, y_true, y_pred):
        """The values one batch gives (update_state's argument, caught while tracing)."""
        self._traced_values = None
        self.update_state(y_true, y_pred)
        values, self._traced_values = self._traced_values, None
        if values is None:
            raise TraceError(f"metric {self.name!r}: update_state(y_true, y_pred) of {type(self).__name__} passed "
                             "nothing to Mean.update_state")
        return values

    def program(self, units: int, activation: str = "linear"):
        """The traced row values of this metric on (rows, units) targets and the last layer's buffer
        (pre-activation when the loss fused the ``activation``: the program applies it)."""
        cache = self.__dict__.setdefault("_programs", {})
        key = (units, activation)
        if key not in cache:
            fn = self._trace_fn()
            label = f"metric {describe(getattr(self, 'fn', type(self).update_state))}"
            cache[key] = trace_rows(lambda t, z: fn(t, _ACTIVATIONS[activation](z)), units, label, grad=False)
        return cache[key]

    def get_config(self):
        """Keras' base config of a Metric (name, dtype), which a subclass's get_config extends."""
        return {"name": self.name, "dtype": "float32"}

    def _trace_fn(self):
        if type(self).update_state is Mean.update_state:
            raise TraceError(f"metric {self.name!r}: a Mean traces the values its subclass's update_state passes on")
        return self._values

    eager_reason = None  # why compile(run_eagerly=True) runs it on the host, if it does

    def host_fn(self, activation: str = "linear"):
        """The metric as a function of concrete (y_true, last layer's buffer) arrays, for the host."""
        fn = self._trace_fn()
        return lambda t, z: fn(t, _ACTIVATIONS[activation](z))

    def __call__(self, *args, **kwargs):
        """Keras' ``metric(...)``: update_state with these arguments, then result()."""
        self.update_state(*args, **kwargs)
        return self.result()


class MeanMetricWrapper(Mean):
    """Keras' wrapper of a metric function ``fn(y_true, y_pred, **kwargs)`` (per-sample values); compile wraps
    a function in it, logged under the function's name."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper(fn): expected a function, got {fn!r}")
        self.fn, self._fn_kwargs = fn, kwargs
        super().__init__(name or getattr(fn, "__name__", "mean"), dtype)

    def _trace_fn(self):
        return lambda y_true, y_pred: self.fn(y_true, y_pred, **self._fn_kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        super().update_state(self._trace_fn()(y_true, y_pred), sample_weight)


class Sum(Mean):
    """Keras' ``Sum``: the sum of the values ``update_state`` receives (standalone, on the host)."""

    name = "sum"
    builtin = True

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, values, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        self._total += float(np.sum(np.asarray(values, np.float64)))

    def result(self, total=None, rows=None):
        return float(self._total if total is None else total)

    def check(self, loss, units):
        raise ValueError("metrics: Sum adds the values its update_state is given (standalone); compile(metrics=) "
                         "takes metrics of (y_true, y_pred)")
