"""The targets a fit or evaluate is given, checked against the loss and the output layer."""
from __future__ import annotations

import numpy as np

from .losses import BinaryCrossentropy, CategoricalCrossentropy, Loss


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
