"""Several inputs or outputs as one array: the inputs side by side in (rows, features), the outputs'
targets side by side in (rows, columns) (a sparse output's labels take one column).

fit/evaluate/predict take a tuple, list or dict (by input or output name) as Keras does; each part is
checked by name before the parts are joined, so the data sets, streaming and the distributed runner
see one x and one y.
"""
from __future__ import annotations

import numpy as np

from .. import losses as losses_mod


def _parts(value, names, arg, what):
    """value as a list in ``names``' order: a tuple/list with one entry per name, or a dict by name."""
    if isinstance(value, dict):
        missing, unknown = [n for n in names if n not in value], sorted(set(value) - set(names))
        if missing or unknown:
            raise ValueError(f"{arg}: expected a dict with the {what} names {names}; missing {missing}, "
                             f"unknown {unknown}")
        return [value[n] for n in names]
    if isinstance(value, (list, tuple)):
        if len(value) != len(names):
            raise ValueError(f"{arg}: the model has {len(names)} {what}s {names}; expected {len(names)} arrays, "
                             f"got {len(value)}")
        return list(value)
    raise TypeError(f"{arg}: the model has {len(names)} {what}s {names}; expected a tuple, list or dict (by {what} "
                    f"name) of arrays, got {type(value).__name__} (data sources stream one array: pass arrays)")


def _host(a, backend=None):
    return a.get() if hasattr(a, "__cuda_array_interface__") and hasattr(a, "get") else np.asarray(a)


def pack_inputs(model, x, arg="x"):
    """x for a model's inputs as the data sets take it: one array (several inputs joined)."""
    names = model.input_names
    if len(names) == 1:
        if isinstance(x, dict):
            return _parts(x, names, arg, "input")[0]
        if isinstance(x, (list, tuple)) and len(x) == 1:
            return x[0]
        return x
    parts = [_host(p, model.backend) for p in _parts(x, names, arg, "input")]
    shapes = [t.sample_shape for t in model._graph.inputs]
    rows = None
    for name, p, shape in zip(names, parts, shapes):
        if p.ndim == 0 or p.shape[1:] not in (shape, (int(np.prod(shape)),)):
            raise ValueError(f"{arg}[{name!r}]: expected samples of shape {shape}, got array shape {p.shape}")
        if p.dtype.kind not in "fiub":
            raise ValueError(f"{arg}[{name!r}]: expected a numeric array, got dtype {p.dtype}")
        if rows is not None and p.shape[0] != rows:
            raise ValueError(f"{arg}[{name!r}]: has {p.shape[0]} rows, but {names[0]!r} has {rows}; every input "
                             "needs one row per sample")
        rows = p.shape[0]
    uint8 = [p.dtype == np.uint8 for p in parts]
    if any(uint8) and not all(uint8):
        raise ValueError(f"{arg}: inputs {[n for n, u in zip(names, uint8) if u]} are uint8 (scaled by 1/255 on "
                         "the device) and the others are not; give every input as uint8 or every one as floats")
    dtype = np.uint8 if all(uint8) else model.dtype
    return np.concatenate([p.reshape(rows, -1).astype(dtype, copy=False) for p in parts], axis=1)


def pack_targets(model, y, rows_hint=None, arg="y"):
    """y for a model's outputs: one array (several outputs' targets joined, each checked by its loss)."""
    names = model.output_names
    if y is None or len(names) == 1 or getattr(model, "_losses", None) is None:
        if len(names) == 1 and isinstance(y, dict):
            return _parts(y, names, arg, "output")[0]
        if len(names) == 1 and isinstance(y, (list, tuple)) and len(y) == 1:
            return y[0]
        return y
    parts = [_host(p, model.backend) for p in _parts(y, names, arg, "output")]
    rows = parts[0].shape[0] if parts[0].ndim else rows_hint
    cols = []
    for name, p, loss, units in zip(names, parts, model._losses, model._units):
        try:
            t = losses_mod.check_targets(loss, p, rows, units, model.dtype)
        except ValueError as exc:
            raise ValueError(f"{arg}[{name!r}]: {exc}") from None
        cols.append(t.reshape(rows, -1).astype(model.dtype))
    return np.concatenate(cols, axis=1)


def pack_validation(model, validation_data):
    if isinstance(validation_data, (tuple, list)) and len(validation_data) == 2:
        return (pack_inputs(model, validation_data[0], "validation_data[0]"),
                pack_targets(model, validation_data[1], arg="validation_data[1]"))
    return validation_data
