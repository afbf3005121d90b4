"""Losses. Each names the backend op that computes it and checks that the output layer fits.

Softmax + cross-entropy (and sigmoid + binary cross-entropy) run as one op on
the logits: stable, and one kernel instead of three.
"""
from __future__ import annotations

import numpy as np


class Loss:
    name = "loss"
    sparse = False           # targets are integer class labels
    fused_activation = None  # output activation folded into the loss op

    def kind(self) -> str:
        raise NotImplementedError

    def check_output(self, activation: str, units: int) -> None:
        """Raise if the output layer cannot feed this loss."""

    def accuracy_threshold(self) -> float:
        """For one-output models: where a prediction turns positive (on logits when fused)."""
        return 0.0 if self.fused_activation == "sigmoid" else 0.5

    def get_config(self) -> str:
        return self.name


class SparseCategoricalCrossentropy(Loss):
    name = "sparse_categorical_crossentropy"
    sparse = True
    fused_activation = "softmax"

    def kind(self):
        return "softmax_xent_sparse"

    def check_output(self, activation, units):
        if activation != "softmax" or units < 2:
            raise ValueError(f"loss={self.name!r} needs a softmax output layer with at least 2 units, "
                             f"got activation={activation!r} with {units} unit(s)")


class CategoricalCrossentropy(SparseCategoricalCrossentropy):
    name = "categorical_crossentropy"
    sparse = False

    def kind(self):
        return "softmax_xent"


class BinaryCrossentropy(Loss):
    name = "binary_crossentropy"
    fused_activation = "sigmoid"

    def kind(self):
        return "sigmoid_bce"

    def check_output(self, activation, units):
        if activation != "sigmoid":
            raise ValueError(f"loss={self.name!r} needs a sigmoid output layer, got activation={activation!r}")


class MeanSquaredError(Loss):
    name = "mse"

    def kind(self):
        return "mse"


LOSSES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get(loss) -> Loss:
    if isinstance(loss, Loss):
        return loss
    if not isinstance(loss, str) or loss not in LOSSES:
        raise ValueError(f"loss: expected one of {sorted(LOSSES)} or a Loss, got {loss!r}")
    return LOSSES[loss]()


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
    return y
