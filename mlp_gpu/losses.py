"""Losses with Keras' names, classes and functions. Each names the backend op that computes it on
the device and checks that the output layer fits.

Softmax + cross-entropy (and sigmoid + binary cross-entropy) run as one op on the logits: stable,
and one kernel instead of three. With ``from_logits=True`` the output layer is linear and the op
reads its outputs as they are. The functions (``sparse_categorical_crossentropy(y_true, y_pred)``)
are Keras' host formulas on NumPy arrays, per sample; ``compile`` maps them to their device op.
"""
from __future__ import annotations

import numpy as np

from . import custom_objects
from ._checks import check_bool
from .tracing import describe, trace_rows

EPSILON = 1e-7  # Keras' backend.epsilon(): probabilities are clipped to [EPSILON, 1 - EPSILON]


# ---- Keras' per-sample functions (host, NumPy) --------------------------------------------------
def _log_probs(y_pred, from_logits):
    y_pred = np.asarray(y_pred, np.float64)
    if from_logits:
        shifted = y_pred - y_pred.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    y_pred = y_pred / y_pred.sum(axis=-1, keepdims=True)
    return np.log(np.clip(y_pred, EPSILON, 1 - EPSILON))


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    """-log p[label] per sample, for integer labels y_true (N,) or (N, 1) and y_pred (N, classes)."""
    labels = np.asarray(y_true).reshape(-1).astype(np.int64)
    return -np.take_along_axis(_log_probs(y_pred, from_logits), labels[:, None], axis=-1)[:, 0]


def categorical_crossentropy(y_true, y_pred, from_logits=False):
    """-sum(y_true * log p) per sample, for one-hot (or soft) y_true of y_pred's shape."""
    return -(np.asarray(y_true, np.float64) * _log_probs(y_pred, from_logits)).sum(axis=-1)


def binary_crossentropy(y_true, y_pred, from_logits=False):
    """Mean over the last axis of -(t log p + (1 - t) log(1 - p))."""
    t, z = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    if from_logits:
        return (np.maximum(z, 0) - z * t + np.log1p(np.exp(-np.abs(z)))).mean(axis=-1)
    p = np.clip(z, EPSILON, 1 - EPSILON)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=-1)


def mean_squared_error(y_true, y_pred):
    """Mean over the last axis of (y_pred - y_true)^2."""
    return ((np.asarray(y_pred, np.float64) - np.asarray(y_true, np.float64)) ** 2).mean(axis=-1)


mse = MSE = mean_squared_error
bce = BCE = binary_crossentropy


# ---- the classes compile uses ------------------------------------------------------------------
class Loss:
    """A loss computed on the device by ``backend.loss_grad(kind(), ...)``.

    Calling it, ``loss(y_true, y_pred)``, gives Keras' mean over the batch on the host.
    """

    name = "loss"
    sparse = False           # targets are integer class labels
    function = None          # Keras' per-sample function

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None, dtype=None):
        if self.traced:  # a user's Loss subclass: Keras' reductions, traced at compile
            if reduction not in TRACED_REDUCTIONS:
                raise ValueError(f"{type(self).__name__}(reduction): a training loss reduces with one of "
                                 f"{TRACED_REDUCTIONS}, got {reduction!r}")
            if from_logits is not False or dtype not in (None, "float32"):
                raise ValueError(f"{type(self).__name__}: Keras' Loss takes name, reduction and dtype (float32)")
            self.reduction = "sum_over_batch_size" if reduction == "mean" else reduction
            self.name = str(name) if name is not None else _snake(type(self).__name__)
            self.from_logits = False
            return
        if reduction not in ("sum_over_batch_size", "auto"):
            raise ValueError(f"{type(self).__name__}(reduction): only 'sum_over_batch_size' (the mean over the "
                             f"batch) is supported, got {reduction!r}")
        self.from_logits = check_bool(from_logits, f"{type(self).__name__}(from_logits)")
        if name is not None:
            self.name = str(name)

    eager_reason = None  # why compile(run_eagerly=True) runs a user's loss on the host, if it does

    @property
    def traced(self) -> bool:
        """A user's loss (a subclass with ``call``, or a function): traced, differentiated and compiled."""
        return type(self).call is not Loss.call

    def call(self, y_true, y_pred):
        """Keras' per-sample loss of a user's subclass, written with mlp_gpu.ops."""
        raise NotImplementedError

    def program(self, units: int):
        """The traced forward and gradient over (rows, units) targets and outputs (made once per width)."""
        cache = self.__dict__.setdefault("_programs", {})
        if units not in cache:
            cache[units] = trace_rows(self.call, units, f"loss {describe(getattr(self, 'fn', self.call))}",
                                     self.reduction)
        return cache[units]

    def scales(self, rows: int) -> tuple[float, float]:
        """(acc_scale, grad_scale): the summed row losses are added once per row as Keras' loss tracker
        weighs each batch by its rows; the gradient is that of Keras' reduced batch loss."""
        return (float(rows), 1.0) if self.reduction == "sum" else (1.0, 1.0 / max(rows, 1))

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("sample_weight: not supported; mlp_gpu weighs every sample alike")
        if self.traced:  # Keras' reduce_values over the concrete values
            values = np.asarray(self.call(np.asarray(y_true, np.float32), np.asarray(y_pred, np.float32)))
            return float(values.sum() if self.reduction == "sum" else values.mean())
        kwargs = {"from_logits": self.from_logits} if self.fused_activation is not None else {}
        return float(np.mean(type(self).function(y_true, y_pred, **kwargs)))

    @property
    def fused_activation(self):
        """The output activation the device op applies to the logits itself (None: it reads outputs)."""
        return None

    def kind(self) -> str:
        raise NotImplementedError

    def check_output(self, activation: str, units: int) -> None:
        """Raise if the output layer cannot feed this loss."""

    def accuracy_threshold(self) -> float:
        """For one-output models: where a prediction turns positive (0 on logits, 0.5 on probabilities)."""
        return 0.0 if self.fused_activation is not None else 0.5

    def get_config(self):
        """A user's Loss: Keras' base config (name, reduction), which its own get_config extends.
        Ours: the name alone when the arguments are Keras' defaults (what older files hold), else a dict."""
        if self.traced:
            return {"name": self.name, "reduction": self.reduction}
        if not self.from_logits and self.name == type(self).name:
            return self.name
        config = {"name": self.name, **({"from_logits": True} if self.from_logits else {})}
        return {"class_name": type(self).__name__, "config": config}


TRACED_REDUCTIONS = ("sum_over_batch_size", "sum", "mean")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(name))


class LossFunctionWrapper(Loss):
    """Keras' wrapper of a loss function ``fn(y_true, y_pred, **kwargs)``; compile wraps a function in it,
    named by the function (as Keras)."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"LossFunctionWrapper(fn): expected a function, got {fn!r}")
        self.fn, self._fn_kwargs = fn, kwargs
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"), dtype=dtype)

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred, **self._fn_kwargs)



def _logits_note(loss):
    return " (from_logits=True: the loss applies the activation itself)" if loss.from_logits else ""


class _SoftmaxCrossentropy(Loss):
    def check_output(self, activation, units):
        want = "linear" if self.from_logits else "softmax"
        if activation != want or units < 2:
            raise ValueError(f"loss={self.name!r} needs a {want} output layer with at least 2 units"
                             f"{_logits_note(self)}, got activation={activation!r} with {units} unit(s)")

    @property
    def fused_activation(self):
        return "linear" if self.from_logits else "softmax"


class SparseCategoricalCrossentropy(_SoftmaxCrossentropy):
    name = "sparse_categorical_crossentropy"
    sparse = True
    function = staticmethod(sparse_categorical_crossentropy)

    def kind(self):
        return "softmax_xent_sparse"


class CategoricalCrossentropy(_SoftmaxCrossentropy):
    name = "categorical_crossentropy"
    function = staticmethod(categorical_crossentropy)

    def kind(self):
        return "softmax_xent"


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    function = staticmethod(binary_crossentropy)

    @property
    def fused_activation(self):
        return "linear" if self.from_logits else "sigmoid"

    def kind(self):
        return "sigmoid_bce"

    def check_output(self, activation, units):
        want = self.fused_activation
        if activation != want:
            raise ValueError(f"loss={self.name!r} needs a {want} output layer{_logits_note(self)}, "
                             f"got activation={activation!r}")


class MeanSquaredError(Loss):
    name = "mean_squared_error"
    function = staticmethod(mean_squared_error)

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(False, reduction, name)

    def kind(self):
        return "mse"


CLASSES = (SparseCategoricalCrossentropy, CategoricalCrossentropy, BinaryCrossentropy, MeanSquaredError)
LOSSES = {name: cls for cls in CLASSES for name in (cls.__name__, cls.name)}
LOSSES.update({"mse": MeanSquaredError, "MSE": MeanSquaredError, "bce": BinaryCrossentropy,
               "BCE": BinaryCrossentropy})
FUNCTIONS = {cls.function: cls for cls in CLASSES}


def get(loss) -> Loss:
    """A Loss from an instance, a class, a Keras function (``losses.mean_squared_error``), a name
    (``"mse"``, ``"MeanSquaredError"``) or a saved config dict."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, type) and issubclass(loss, Loss) and loss is not Loss:
        return loss()
    if custom_objects.is_custom(loss) and loss.get("class_name") not in LOSSES:  # a user's, by name (files)
        loss = custom_objects.deserialize(loss, "loss")
        if isinstance(loss, Loss):
            return loss
    if isinstance(loss, dict) and loss.get("class_name") in LOSSES and isinstance(loss.get("config", {}), dict):
        return LOSSES[loss["class_name"]](**loss.get("config", {}))
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    try:
        if loss in FUNCTIONS:
            return FUNCTIONS[loss]()
    except TypeError:  # unhashable
        pass
    if callable(loss) and not isinstance(loss, type):
        return LossFunctionWrapper(loss)
    hint = ""
    raise ValueError(f"loss: expected one of {sorted(LOSSES)}, a mlp_gpu.losses class or function, "
                     f"got {loss!r}{hint}")


def serialize(loss: Loss):
    """What a model file stores: a user's loss as Keras serializes it (by name), ours by get_config."""
    return custom_objects.serialize(loss) if loss.traced else loss.get_config()


def check_targets(loss: Loss, y, rows: int, units: int, dtype=np.float32) -> np.ndarray:
    """Return targets in the dtype and shape the loss op reads, or raise saying what is wrong."""
    y = np.asarray(y)
    if y.shape[:1] != (rows,):
        raise ValueError(f"y: expected {rows} targets (one per row of x), got shape {y.shape}")
    if loss.sparse:
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise ValueError(f"y: loss={loss.name!r} expects integer class labels of shape ({rows},), "
                             f"got shape {y.shape}; one-hot targets need loss='categorical_crossentropy'")
        if y.dtype.kind == "f":
            if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
                raise ValueError(f"y: loss={loss.name!r} expects integer class labels, got non-integer values")
        elif y.dtype.kind not in "iub":
            raise ValueError(f"y: expected integer class labels, got dtype {y.dtype}")
        if rows and (y.min() < 0 or y.max() >= units):
            raise ValueError(f"y: class labels must lie in [0, {units - 1}] for {units} output units, "
                             f"found values from {y.min()} to {y.max()}")
        return y.astype(np.int32)
    if y.ndim == 1 and units == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != units:
        hint = (" (integer labels need loss='sparse_categorical_crossentropy')"
                if y.ndim == 1 and isinstance(loss, CategoricalCrossentropy) else "")
        raise ValueError(f"y: loss={loss.name!r} expects targets of shape ({rows}, {units}), got {y.shape}{hint}")
    if y.dtype.kind not in "fiub":
        raise ValueError(f"y: expected numeric targets, got dtype {y.dtype}")
    y = y.astype(dtype)
    if not np.all(np.isfinite(y)):
        raise ValueError("y: targets contain NaN or infinity")
    if isinstance(loss, BinaryCrossentropy) and rows and (y.min() < 0 or y.max() > 1):
        # Keras computes a meaningless (even negative) loss here without a word
        raise ValueError(f"y: loss={loss.name!r} expects targets in [0, 1] (probabilities or 0/1 labels), "
                         f"found values from {y.min():g} to {y.max():g}")
    return y
