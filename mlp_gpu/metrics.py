"""Metrics. Accuracy is counted on the device by ``backend.count_correct``; this module names them."""
from __future__ import annotations

METRICS = {"accuracy": "accuracy", "acc": "accuracy"}


def get_list(metrics) -> list[str]:
    if metrics is None:
        return []
    if isinstance(metrics, str):
        metrics = [metrics]
    out = []
    for m in metrics:
        if m not in METRICS:
            raise ValueError(f"metrics: expected names from {sorted(METRICS)}, got {m!r}")
        if METRICS[m] not in out:
            out.append(METRICS[m])
    return out
