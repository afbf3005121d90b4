"""compile(run_eagerly=True): a user's loss or metric that cannot be traced runs as Python on the host.

Every step then copies the outputs and targets to the host, calls the function on NumPy arrays (any
NumPy call and Python ``if`` allowed), and copies the gradient back: slow, and logged so at compile.
No autodiff exists for arbitrary Python, so a loss's gradient is taken by central differences in
float64, one column of y_pred at a time over all rows at once (2 k + 1 calls a step); that is exact
to O(h^2) for row-wise losses (each row's value depends on its own row only, as Keras' per-sample
losses do) and wrong for a loss that mixes rows. The steps run without CUDA graphs.
"""
from __future__ import annotations

import logging

import numpy as np

from ..losses import Loss
from ..tracing import TraceError

log = logging.getLogger("mlp_gpu")
_STEP = 1e-4  # relative step of the central differences (float64: error ~ h^2, rounding ~ 1e-16 / h)


def trace_or_eager(obj, units, activation, run_eagerly) -> None:
    """Trace a user's loss or metric at compile; an untraceable one is refused (TraceError, naming its
    line and op), or with run_eagerly marked to run on the host (``eager_reason``) and logged."""
    obj.eager_reason = None
    try:
        if isinstance(obj, Loss):
            obj.program(units)
        else:
            obj.program(units, activation)
    except TraceError as exc:
        if not run_eagerly:
            raise
        obj.eager_reason = str(exc)
        warn_eager(f"{type(obj).__name__} {obj.name!r}", obj.eager_reason)


def warn_eager(what: str, reason: str) -> None:
    log.warning("%s runs eagerly on the host (compile(run_eagerly=True)), a device-to-host copy and Python call "
                "every step: slow. Why it is not compiled: %s", what, reason)


def _rows(fn, t, z, reduction):
    values = np.asarray(fn(t, z), np.float64)
    if values.shape[:1] != (len(z),) or values.ndim > 2:
        raise ValueError(f"a loss or metric returns one value per row or per output, got shape {values.shape} "
                         f"for {len(z)} rows")
    if values.ndim == 2:
        return values.sum(axis=1) if reduction == "sum" else values.mean(axis=1)
    return values


def host_loss(backend, loss, z, target, dz, acc, slot) -> None:
    """acc[slot] += the batch's summed row losses (scaled as ``Loss.scales``); dz <- their gradient."""
    zh = backend.to_host(z).astype(np.float64)
    th = backend.to_host(target).astype(np.float64).reshape(zh.shape)
    n, k = zh.shape
    acc_scale, grad_scale = loss.scales(n)
    rows = _rows(loss.call, th, zh, loss.reduction)
    grad = np.empty_like(zh)
    for j in range(k):
        h = _STEP * np.maximum(1.0, np.abs(zh[:, j]))
        zp, zm = zh.copy(), zh.copy()
        zp[:, j] += h
        zm[:, j] -= h
        grad[:, j] = (_rows(loss.call, th, zp, loss.reduction) - _rows(loss.call, th, zm, loss.reduction)) / (2 * h)
    backend.copy_from_host(dz, (grad * grad_scale).astype(dz.dtype))
    acc[slot] += acc_scale * float(rows.sum())


def host_metric(backend, fn, z, target, acc, slot) -> None:
    """acc[slot] += the batch's summed row means of fn(y_true, y_pred) (Keras' Mean of a metric)."""
    zh = backend.to_host(z).astype(np.float64)
    th = backend.to_host(target).astype(np.float64).reshape(zh.shape)
    acc[slot] += float(_rows(fn, th, zh, "sum_over_batch_size").sum())
