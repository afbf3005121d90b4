"""The built-in loss classes, with Keras 3's signatures, names and configs.

The cross-entropies and the mean squared error name their fused backend op (``kind``); the others,
and a cross-entropy with label smoothing, are traced from their function in ``functions.py``.
"""
from __future__ import annotations

import logging

import numpy as np

from .._checks import check_bool
from . import functions as F
from .base import Loss

log = logging.getLogger("mlp_gpu")


def _logits_note(loss):
    return " (from_logits=True: the loss applies the activation itself)" if loss.from_logits else ""


class _Builtin(Loss):
    """One of ours: Keras' default name, Keras' config keys (``config_keys``), its function's kwargs."""

    builtin = True
    function = None          # Keras' per-sample function (functions.py)
    config_keys: tuple = ()  # the arguments get_config returns besides name and reduction

    def __init__(self, reduction="sum_over_batch_size", name=None, dtype=None):
        super().__init__(name=self.name if name is None else name, reduction=reduction, dtype=dtype)

    def fn_kwargs(self) -> dict:
        return {key: getattr(self, key) for key in self.config_keys}

    def call(self, y_true, y_pred):
        return type(self).function(y_true, y_pred, **self.fn_kwargs())

    def get_config(self):
        return {**super().get_config(), **self.fn_kwargs()}


def _check_axis(axis, owner):
    axis = F._check_axis(axis, owner)
    if axis not in (-1, 1):
        raise ValueError(f"{owner}(axis): a model's outputs are (rows, units), so the class axis is -1 (or 1), "
                         f"got {axis}")
    return axis


class _Fused(_Builtin):
    """A loss with a fused backend op (``kind``), unless an argument needs the traced row program."""

    @property
    def traced(self):
        return self.traced_because is not None

    @property
    def traced_because(self):
        return None

    def check_output(self, activation, units):
        super().check_output(activation, units)
        if self.traced_because:
            log.info("loss %r: %s, so it runs as its traced row program (the general step), not the fused op",
                     self.name, self.traced_because)


class _Crossentropy(_Fused):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name=None, dtype=None):
        owner = type(self).__name__
        self.from_logits = check_bool(from_logits, f"{owner}(from_logits)")
        self.label_smoothing = F._check_smoothing(label_smoothing, owner)
        self.axis = _check_axis(axis, owner)
        super().__init__(reduction, name, dtype)

    config_keys = ("from_logits", "label_smoothing", "axis")

    @property
    def traced_because(self):
        if self.label_smoothing:
            return f"label_smoothing={self.label_smoothing:g} (the fused op takes the targets as they are)"
        if self.reduction not in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
            return f"reduction={self.reduction!r} (the fused op averages over the batch)"
        return None

    @property
    def fused_activation(self):
        if self.traced:
            return None  # the traced program reads the output layer's outputs
        return "linear" if self.from_logits else self.activation

    def check_output(self, activation, units):
        super().check_output(activation, units)
        want = "linear" if self.from_logits else self.activation
        if activation != want or units < self.min_units:
            raise ValueError(f"loss={self.name!r} needs a {want} output layer with at least {self.min_units} "
                             f"unit(s){_logits_note(self)}, got activation={activation!r} with {units} unit(s)")


class CategoricalCrossentropy(_Crossentropy):
    name = "categorical_crossentropy"
    function = staticmethod(F.categorical_crossentropy)
    activation, min_units = "softmax", 2

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def kind(self):
        return "softmax_xent"


class BinaryCrossentropy(_Crossentropy):
    name = "binary_crossentropy"
    function = staticmethod(F.binary_crossentropy)
    activation, min_units = "sigmoid", 1

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(from_logits, label_smoothing, axis, reduction, name, dtype)

    def kind(self):
        return "sigmoid_bce"


class SparseCategoricalCrossentropy(_Fused):
    """Integer labels. ``ignore_class``: those samples count 0 and the mean is over the others (Keras'
    mask) when the loss is called; training refuses it (the fused op weighs every row)."""

    name = "sparse_categorical_crossentropy"
    sparse = True
    function = staticmethod(F.sparse_categorical_crossentropy)
    config_keys = ("from_logits", "ignore_class", "axis")

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        owner = type(self).__name__
        self.from_logits = check_bool(from_logits, f"{owner}(from_logits)")
        if ignore_class is not None and (isinstance(ignore_class, bool) or
                                         not isinstance(ignore_class, (int, np.integer))):
            raise ValueError(f"{owner}(ignore_class): expected None or an integer label, got {ignore_class!r}")
        self.ignore_class = None if ignore_class is None else int(ignore_class)
        self.axis = _check_axis(axis, owner)
        super().__init__(reduction, name, dtype)

    @property
    def fused_activation(self):
        return "linear" if self.from_logits else "softmax"

    def values(self, y_true, y_pred):
        return F.sparse_categorical_crossentropy(y_true, y_pred, **self.fn_kwargs())

    def __call__(self, y_true, y_pred, sample_weight=None):
        if self.ignore_class is None or self.reduction not in ("sum_over_batch_size", "mean"):
            return super().__call__(y_true, y_pred, sample_weight)
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        values = self.values(y_true, y_pred)
        valid = np.count_nonzero(np.asarray(y_true).reshape(values.shape) != self.ignore_class)
        return float(values.sum() / valid) if valid else 0.0  # Keras' divide_no_nan over the valid samples

    def check_output(self, activation, units):
        if self.reduction not in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
            raise ValueError(f"{type(self).__name__}(reduction={self.reduction!r}): training with integer labels "
                             "averages over the batch (reduction='sum_over_batch_size')")
        if self.ignore_class is not None:
            raise ValueError(f"{type(self).__name__}(ignore_class={self.ignore_class}): training with an ignored "
                             "class is not supported (the fused op weighs every row); calling the loss honours it")
        want = "linear" if self.from_logits else "softmax"
        if activation != want or units < 2:
            raise ValueError(f"loss={self.name!r} needs a {want} output layer with at least 2 units"
                             f"{_logits_note(self)}, got activation={activation!r} with {units} unit(s)")

    def kind(self):
        return "softmax_xent_sparse"


class MeanSquaredError(_Fused):
    name = "mean_squared_error"
    function = staticmethod(F.mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(reduction, name, dtype)

    @property
    def traced_because(self):
        return "reduction='sum' (the fused op averages over the batch)" if self.reduction == "sum" else None

    def kind(self):
        return "mse"


# ---- traced from their function -----------------------------------------------------------------
class MeanAbsoluteError(_Builtin):
    name = "mean_absolute_error"
    function = staticmethod(F.mean_absolute_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(reduction, name, dtype)


class MeanAbsolutePercentageError(_Builtin):
    name = "mean_absolute_percentage_error"
    function = staticmethod(F.mean_absolute_percentage_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None):
        super().__init__(reduction, name, dtype)


class MeanSquaredLogarithmicError(_Builtin):
    name = "mean_squared_logarithmic_error"
    function = staticmethod(F.mean_squared_logarithmic_error)

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(reduction, name, dtype)


class Huber(_Builtin):
    name = "huber_loss"
    function = staticmethod(F.huber)
    config_keys = ("delta",)

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        self.delta = F._check_delta(delta, "Huber")
        super().__init__(reduction, name, dtype)


class LogCosh(_Builtin):
    name = "log_cosh"
    function = staticmethod(F.log_cosh)

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(reduction, name, dtype)


class KLDivergence(_Builtin):
    name = "kl_divergence"
    function = staticmethod(F.kl_divergence)

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(reduction, name, dtype)


class Poisson(_Builtin):
    name = "poisson"
    function = staticmethod(F.poisson)

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(reduction, name, dtype)


class Hinge(_Builtin):
    """0/1 labels become -1/1 (Keras does so when the whole batch is 0/1; a traced row, per element)."""

    name = "hinge"
    function = staticmethod(F.hinge)

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(reduction, name, dtype)


class SquaredHinge(Hinge):
    name = "squared_hinge"
    function = staticmethod(F.squared_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(reduction, name, dtype)


class CategoricalHinge(_Builtin):
    name = "categorical_hinge"
    function = staticmethod(F.categorical_hinge)

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(reduction, name, dtype)


class CosineSimilarity(_Builtin):
    name = "cosine_similarity"
    function = staticmethod(F.cosine_similarity)
    config_keys = ("axis",)

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        self.axis = _check_axis(axis, "CosineSimilarity")
        super().__init__(reduction, name, dtype)


CLASSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError,
           MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredLogarithmicError, Huber, LogCosh,
           KLDivergence, Poisson, Hinge, SquaredHinge, CategoricalHinge, CosineSimilarity)
