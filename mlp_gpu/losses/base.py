"""Keras' ``Loss`` base class and ``LossFunctionWrapper``: how a loss runs in training.

A loss either names a fused backend op (``kind()``: softmax or sigmoid cross-entropy on the logits,
mean squared error) or is traced: its per-sample ``call(y_true, y_pred)``, written with mlp_gpu.ops,
becomes at compile one row program with its gradient (``program``), one kernel on a GPU and in-place
NumPy on the CPU (``backend.run_traced``). A user's subclass with ``call`` is traced; so are the built-in
losses without a fused op (``builtin``: saved by their config rather than as a user's object).
"""
from __future__ import annotations

import numpy as np

from ..tracing import describe, trace_rows
from ..naming import snake_case

# Keras' reductions (keras/src/losses/loss.py standardize_reduction); training sums or averages the rows
REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")
TRACED_REDUCTIONS = ("sum_over_batch_size", "sum", "mean", "mean_with_sample_weight")


def check_reduction(reduction, owner: str):
    if not isinstance(reduction, (str, type(None))) or reduction not in REDUCTIONS:
        raise ValueError(f"{owner}(reduction): expected one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def check_dtype(dtype, owner: str):
    if dtype not in (None, "float32", np.float32) and getattr(dtype, "name", None) != "float32":
        raise ValueError(f"{owner}(dtype): losses compute in float32 here, got {dtype!r}")
    return None if dtype is None else "float32"


class Loss:
    """Keras' ``Loss(name=None, reduction="sum_over_batch_size", dtype=None)``.

    Calling it, ``loss(y_true, y_pred)``, gives Keras' reduced value on the host (the per-sample values
    with ``reduction=None``).
    """

    name = "loss"
    sparse = False           # targets are integer class labels
    builtin = False          # one of mlp_gpu's own losses (saved by get_config, not as a user's object)
    from_logits = False
    eager_reason = None      # why compile(run_eagerly=True) runs a user's loss on the host, if it does

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        owner = type(self).__name__
        self.reduction = check_reduction(reduction, owner)
        self.dtype = check_dtype(dtype, owner)
        if name is not None:
            self.name = str(name)
        elif not self.builtin and type(self).name == Loss.name:
            self.name = snake_case(owner)  # Keras: a subclass without a name is named after its class

    @property
    def traced(self) -> bool:
        """Whether training runs this loss as its traced row program (``call``) rather than a fused op."""
        return type(self).call is not Loss.call

    def call(self, y_true, y_pred):
        """Keras' per-sample loss, written with mlp_gpu.ops (a user's subclass defines it)."""
        raise NotImplementedError

    def program(self, units: int):
        """The traced forward and gradient over (rows, units) targets and outputs (made once per width)."""
        cache = self.__dict__.setdefault("_programs", {})
        if units not in cache:
            cache[units] = trace_rows(self.call, units, f"loss {describe(getattr(self, 'fn', self.call))}",
                                      "sum" if self.reduction == "sum" else "sum_over_batch_size")
        return cache[units]

    def scales(self, rows: int) -> tuple[float, float]:
        """(acc_scale, grad_scale): the summed row losses are added once per row as Keras' loss tracker
        weighs each batch by its rows; the gradient is that of Keras' reduced batch loss."""
        return (float(rows), 1.0) if self.reduction == "sum" else (1.0, 1.0 / max(rows, 1))

    def values(self, y_true, y_pred):
        """Keras' per-sample values on the host (NumPy, float64)."""
        return np.asarray(self.call(np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)), np.float64)

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        values = self.values(y_true, y_pred)
        if self.reduction in (None, "none") or values.ndim == 0:
            return values
        return float(values.sum() if self.reduction == "sum" else values.mean())

    # ---- what compile and the training step ask ---------------------------------------------------
    @property
    def fused_activation(self):
        """The output activation the device op applies to the logits itself (None: it reads outputs)."""
        return None

    def kind(self) -> str:
        raise ValueError(f"loss {self.name!r} has no fused backend op; it runs as its traced row program")

    def check_output(self, activation: str, units: int) -> None:
        """Raise if the output layer cannot feed this loss (or its reduction cannot train)."""
        if self.reduction not in TRACED_REDUCTIONS:
            raise ValueError(f"{type(self).__name__}(reduction={self.reduction!r}) gives one value per sample; "
                             f"training reduces the batch with one of {TRACED_REDUCTIONS}")

    def accuracy_threshold(self) -> float:
        """For one-output models: where a prediction turns positive (0 on logits, 0.5 on probabilities)."""
        return 0.0 if self.fused_activation is not None else 0.5

    def get_config(self):
        """Keras' config: name and reduction, which a subclass's get_config extends."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LossFunctionWrapper(Loss):
    """Keras' wrapper of a loss function ``fn(y_true, y_pred, **kwargs)``; compile wraps a function in it,
    named by the function (as Keras)."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper(fn): expected a function, got {fn!r}")
        self.fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", "loss"), reduction=reduction, dtype=dtype)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)
